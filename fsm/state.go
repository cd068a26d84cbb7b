package fsm

import (
	"sort"
	"time"
)

// Unit is one node of the cluster as the inventory knows it.
type Unit struct {
	NodeID       string    `json:"node_id"`
	Name         string    `json:"name"`
	Worker       bool      `json:"worker"`
	RaftAddr     string    `json:"raft_addr"`
	HTTPAddr     string    `json:"http_addr"`
	GossipAddr   string    `json:"gossip_addr,omitempty"`
	AddedAt      time.Time `json:"added_at"`
	IsActive     int       `json:"is_active"`
	ModelName    string    `json:"model_name,omitempty"`
	ModelVersion string    `json:"model_version,omitempty"`
}

// Experiment is one experiment of the cluster.
type Experiment struct {
	Experiment   string    `json:"experiment"`
	Description  string    `json:"description"`
	Tags         []string  `json:"tags"`
	MediaUsed    string    `json:"media_used,omitempty"`
	OrganismUsed string    `json:"organism_used,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// AssignmentRecord is one period during which a unit was in an experiment.
// Unit is the unit's name at the time it was assigned.
type AssignmentRecord struct {
	NodeID       string     `json:"node_id"`
	Unit         string     `json:"pioreactor_unit"`
	Experiment   string     `json:"experiment"`
	AssignedAt   time.Time  `json:"assigned_at"`
	UnassignedAt *time.Time `json:"unassigned_at"`
}

// UnitLabel is a unit's label within an experiment.
type UnitLabel struct {
	Experiment string `json:"experiment"`
	NodeID     string `json:"node_id"`
	Label      string `json:"label"`
}

// Assignment says which experiment a unit is in right now.
type Assignment struct {
	NodeID     string `json:"node_id"`
	Unit       string `json:"pioreactor_unit"`
	Experiment string `json:"experiment"`
}

// Event is one entry of the cluster's event log: joins, leaves, deaths, renames.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	NodeID  string    `json:"node_id,omitempty"`
	Unit    string    `json:"pioreactor_unit,omitempty"`
	Message string    `json:"message"`
}

// Tombstone records that a node was removed from the cluster.
type Tombstone struct {
	NodeID    string    `json:"node_id"`
	Name      string    `json:"name"`
	RemovedAt time.Time `json:"removed_at"`
}

// maxEvents and maxTombstones bound the event log and the tombstones kept in memory.
const (
	maxEvents     = 1000
	maxTombstones = 1000
)

// appliedRequest remembers the outcome of one applied request ID.
type appliedRequest struct {
	RequestID string `json:"request_id"`
	Err       string `json:"err,omitempty"`
}

// state is everything the FSM holds. It is owned by FSM and guarded by its lock.
type state struct {
	units       map[string]*Unit // by node ID
	experiments map[string]*Experiment
	assignments map[string]string // node ID -> experiment
	history     []AssignmentRecord
	labels      map[string]map[string]string // experiment -> node ID -> label
	events      []Event                      // oldest first, at most maxEvents
	tombstones  []Tombstone                  // oldest first, at most maxTombstones
	jobs        map[string][]JobRecord       // node ID -> its jobs as last reported, by name
	gossip      *GossipKeys                  // the gossip keyring; nil until set (and in open clusters)
	profiles    map[string]*ProfileFile      // by filename
	runs        map[string]*ProfileRun       // by run ID
	// securityPhase is how far an open cluster is on its way to secrets.
	securityPhase int
	// requests remembers the outcomes of the last maxRequests request IDs:
	// ring holds them in order of application, next is where the next one goes.
	requests map[string]string
	ring     []string
	next     int
}

func newState() *state {
	return &state{
		units:       map[string]*Unit{},
		experiments: map[string]*Experiment{},
		assignments: map[string]string{},
		labels:      map[string]map[string]string{},
		jobs:        map[string][]JobRecord{},
		requests:    map[string]string{},
		profiles:    map[string]*ProfileFile{},
		runs:        map[string]*ProfileRun{},
	}
}

// unitByName finds a unit by its current name.
func (s *state) unitByName(name string) *Unit {
	for _, u := range s.units {
		if u.Name == name {
			return u
		}
	}
	return nil
}

// snapshotData is the serialized form of state; slices are sorted so the
// encoding of a state is unique.
type snapshotData struct {
	Version     int                `json:"version"`
	Units       []Unit             `json:"units"`
	Experiments []Experiment       `json:"experiments"`
	Assignments []Assignment       `json:"assignments"`
	History     []AssignmentRecord `json:"history"`
	Labels      []UnitLabel        `json:"labels"`
	Events      []Event            `json:"events"`
	Tombstones  []Tombstone        `json:"tombstones"`
	Jobs        []JobRecord        `json:"jobs,omitempty"`
	GossipKeys  *GossipKeys        `json:"gossip_keys,omitempty"`
	// SecurityPhase is kept for open clusters being secured.
	SecurityPhase int              `json:"security_phase,omitempty"`
	Requests      []appliedRequest `json:"requests"`
	// Profiles and ProfileRuns are the experiment profiles and their runs.
	Profiles    []ProfileFile `json:"profiles,omitempty"`
	ProfileRuns []ProfileRun  `json:"profile_runs,omitempty"`
}

func (s *state) export() snapshotData {
	d := snapshotData{Version: Version, History: append([]AssignmentRecord{}, s.history...),
		Events: append([]Event{}, s.events...), Tombstones: append([]Tombstone{}, s.tombstones...)}
	if s.gossip != nil {
		d.GossipKeys = s.gossip.clone()
	}
	d.SecurityPhase = s.securityPhase
	d.Requests = make([]appliedRequest, 0, len(s.ring))
	for i := range s.ring {
		id := s.ring[(s.next+i)%len(s.ring)]
		d.Requests = append(d.Requests, appliedRequest{RequestID: id, Err: s.requests[id]})
	}
	d.Units = make([]Unit, 0, len(s.units))
	for _, u := range s.units {
		d.Units = append(d.Units, *u)
	}
	sort.Slice(d.Units, func(i, j int) bool { return d.Units[i].NodeID < d.Units[j].NodeID })
	d.Experiments = make([]Experiment, 0, len(s.experiments))
	for _, e := range s.experiments {
		c := *e
		c.Tags = append([]string{}, e.Tags...)
		d.Experiments = append(d.Experiments, c)
	}
	sort.Slice(d.Experiments, func(i, j int) bool { return d.Experiments[i].Experiment < d.Experiments[j].Experiment })
	d.Assignments = s.assignmentList()
	d.Labels = []UnitLabel{}
	for exp, m := range s.labels {
		for id, l := range m {
			d.Labels = append(d.Labels, UnitLabel{Experiment: exp, NodeID: id, Label: l})
		}
	}
	for _, js := range s.jobs {
		for _, j := range js {
			j.Settings = copySettings(j.Settings)
			d.Jobs = append(d.Jobs, j)
		}
	}
	sort.Slice(d.Jobs, func(i, j int) bool {
		if d.Jobs[i].NodeID != d.Jobs[j].NodeID {
			return d.Jobs[i].NodeID < d.Jobs[j].NodeID
		}
		return d.Jobs[i].Name < d.Jobs[j].Name
	})
	for _, p := range s.profiles {
		d.Profiles = append(d.Profiles, *p)
	}
	sort.Slice(d.Profiles, func(i, j int) bool { return d.Profiles[i].Filename < d.Profiles[j].Filename })
	for _, r := range s.runs {
		d.ProfileRuns = append(d.ProfileRuns, r.clone())
	}
	sort.Slice(d.ProfileRuns, func(i, j int) bool { return d.ProfileRuns[i].RunID < d.ProfileRuns[j].RunID })
	sort.Slice(d.Labels, func(i, j int) bool {
		if d.Labels[i].Experiment != d.Labels[j].Experiment {
			return d.Labels[i].Experiment < d.Labels[j].Experiment
		}
		return d.Labels[i].NodeID < d.Labels[j].NodeID
	})
	return d
}

func importState(d snapshotData) *state {
	s := newState()
	for i := range d.Units {
		u := d.Units[i]
		s.units[u.NodeID] = &u
	}
	for i := range d.Experiments {
		e := d.Experiments[i]
		if e.Tags == nil {
			e.Tags = []string{}
		}
		s.experiments[e.Experiment] = &e
	}
	for _, a := range d.Assignments {
		s.assignments[a.NodeID] = a.Experiment
	}
	s.history = d.History
	for _, l := range d.Labels {
		if s.labels[l.Experiment] == nil {
			s.labels[l.Experiment] = map[string]string{}
		}
		s.labels[l.Experiment][l.NodeID] = l.Label
	}
	s.events = d.Events
	s.tombstones = d.Tombstones
	s.gossip = d.GossipKeys
	s.securityPhase = d.SecurityPhase
	for _, j := range d.Jobs {
		s.jobs[j.NodeID] = append(s.jobs[j.NodeID], j)
	}
	for _, r := range d.Requests {
		s.remember(r.RequestID, r.Err)
	}
	for i := range d.Profiles {
		p := d.Profiles[i]
		s.profiles[p.Filename] = &p
	}
	for i := range d.ProfileRuns {
		r := d.ProfileRuns[i]
		if r.Steps == nil {
			r.Steps = map[string]StepRecord{}
		}
		if r.Jobs == nil {
			r.Jobs = []RunJob{}
		}
		s.runs[r.RunID] = &r
	}
	return s
}

// maxRequests bounds how many request IDs the FSM remembers for deduplication.
const maxRequests = 20000

// remember records the outcome of a request ID, forgetting the oldest one when full.
func (s *state) remember(id, errText string) {
	if id == "" {
		return
	}
	if len(s.ring) < maxRequests {
		s.ring = append(s.ring, id)
	} else {
		delete(s.requests, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % maxRequests
	}
	s.requests[id] = errText
}

// event appends to the event log, dropping the oldest beyond maxEvents.
func (s *state) event(e Event) {
	s.events = append(s.events, e)
	if len(s.events) > maxEvents {
		s.events = append([]Event{}, s.events[len(s.events)-maxEvents:]...)
	}
}

// tombstone returns the index of nodeID's tombstone, or -1.
func (s *state) tombstone(nodeID string) int {
	for i, t := range s.tombstones {
		if t.NodeID == nodeID {
			return i
		}
	}
	return -1
}

// assignmentList returns every current assignment, by node ID.
func (s *state) assignmentList() []Assignment {
	out := make([]Assignment, 0, len(s.assignments))
	for id, exp := range s.assignments {
		name := ""
		if u := s.units[id]; u != nil {
			name = u.Name
		}
		out = append(out, Assignment{NodeID: id, Unit: name, Experiment: exp})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}
