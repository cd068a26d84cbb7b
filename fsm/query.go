package fsm

import "sort"

// Units returns a copy of every unit, sorted by name.
func (f *FSM) Units() []Unit {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Unit, 0, len(f.s.units))
	for _, u := range f.s.units {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// UnitByID returns the unit with that node ID.
func (f *FSM) UnitByID(nodeID string) (Unit, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	u, ok := f.s.units[nodeID]
	if !ok {
		return Unit{}, false
	}
	return *u, true
}

// UnitByName returns the unit that has that name now.
func (f *FSM) UnitByName(name string) (Unit, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	u := f.s.unitByName(name)
	if u == nil {
		return Unit{}, false
	}
	return *u, true
}

// Experiments returns every experiment, newest first.
func (f *FSM) Experiments() []Experiment {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Experiment, 0, len(f.s.experiments))
	for _, e := range f.s.experiments {
		c := *e
		c.Tags = append([]string{}, e.Tags...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].Experiment < out[j].Experiment
	})
	return out
}

// Experiment returns one experiment by name.
func (f *FSM) Experiment(name string) (Experiment, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.s.experiments[name]
	if !ok {
		return Experiment{}, false
	}
	c := *e
	c.Tags = append([]string{}, e.Tags...)
	return c, true
}

// Assignments returns the current assignment of every assigned unit, by unit name.
func (f *FSM) Assignments() []Assignment {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.s.assignmentList() // not export(): that copies every experiment, and POST /api/experiments asks this
}

// ExperimentOf returns the experiment a unit (by node ID) is assigned to, or "".
func (f *FSM) ExperimentOf(nodeID string) string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.s.assignments[nodeID]
}

// History returns every assignment period, oldest first.
func (f *FSM) History() []AssignmentRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]AssignmentRecord{}, f.s.history...)
}

// HoldsOnly reports whether the state holds nothing beyond the registration
// of the node nodeID: no other unit, no experiment, no assignment history.
// Such a standalone node may be discarded when it joins a cluster.
func (f *FSM) HoldsOnly(nodeID string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for id := range f.s.units {
		if id != nodeID {
			return false
		}
	}
	return len(f.s.experiments) == 0 && len(f.s.history) == 0
}

// Counts returns how many units and experiments the state holds.
func (f *FSM) Counts() (units, experiments int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.s.units), len(f.s.experiments)
}

// Events returns the event log, oldest first.
func (f *FSM) Events() []Event {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]Event{}, f.s.events...)
}

// Removed reports whether the node was removed from the cluster (and not added back).
func (f *FSM) Removed(nodeID string) bool {
	m := f.removed.Load()
	return m != nil && (*m)[nodeID]
}

// Labels returns the unit labels of an experiment, by unit name.
func (f *FSM) Labels(exp string) map[string]string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := map[string]string{}
	for id, l := range f.s.labels[exp] {
		if u, ok := f.s.units[id]; ok {
			out[u.Name] = l
		}
	}
	return out
}
