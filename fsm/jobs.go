package fsm

import (
	"sort"
	"time"
)

// JobRecord is a job as its worker last reported it: what the cluster shows
// when the worker cannot be asked (state "lost" when it is dead).
type JobRecord struct {
	NodeID     string         `json:"node_id"`
	Unit       string         `json:"pioreactor_unit"`
	Name       string         `json:"job_name"`
	Experiment string         `json:"experiment"`
	State      string         `json:"state"`
	Settings   map[string]any `json:"settings"`
	StartedAt  time.Time      `json:"started_at"`
	ReportedAt time.Time      `json:"reported_at"`
}

// JobsReport is a worker's full list of running jobs; it replaces what the
// cluster knew of that worker's jobs.
type JobsReport struct {
	NodeID string      `json:"node_id"`
	Jobs   []JobRecord `json:"jobs"`
}

// reportJobs replaces a unit's job records, keeping only the jobs it may run
// (active, and of the experiment it is assigned to), so a report that crosses
// an unassignment cannot bring back a halted job.
func (s *state) reportJobs(r JobsReport, now time.Time) error {
	if r.NodeID == "" {
		return ErrBadPayload
	}
	u := s.units[r.NodeID]
	if u == nil {
		delete(s.jobs, r.NodeID)
		return nil
	}
	var keep []JobRecord
	for _, j := range r.Jobs {
		if j.Name == "" {
			return ErrBadPayload
		}
		j.NodeID, j.Unit, j.ReportedAt = r.NodeID, u.Name, now
		keep = append(keep, j)
	}
	sort.Slice(keep, func(a, b int) bool { return keep[a].Name < keep[b].Name })
	s.jobs[r.NodeID] = keep
	s.pruneJobs()
	return nil
}

// changesWhoMayRun are the commands after which a unit may no longer run a
// job it reported: job records are pruned after them.
var changesWhoMayRun = map[CommandType]bool{
	CmdRegisterUnit: true, CmdRemoveUnit: true, CmdSetActive: true, CmdAssign: true, CmdUnassign: true,
	CmdUnassignAll: true, CmdDeleteExperiment: true, CmdUnassignEverywhere: true,
}

// pruneJobs drops the records of jobs their unit may no longer run: the unit
// was removed, set inactive, or unassigned from the job's experiment.
func (s *state) pruneJobs() {
	for id, js := range s.jobs {
		u := s.units[id]
		var keep []JobRecord
		for _, j := range js {
			if u != nil && u.Worker && u.IsActive == 1 && s.assignments[id] == j.Experiment {
				j.Unit = u.Name
				keep = append(keep, j)
			}
		}
		if len(keep) == 0 {
			delete(s.jobs, id)
		} else {
			s.jobs[id] = keep
		}
	}
}

// JobRecords returns the jobs a unit last reported, by job name; empty if none.
func (f *FSM) JobRecords(nodeID string) []JobRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]JobRecord, 0, len(f.s.jobs[nodeID]))
	for _, j := range f.s.jobs[nodeID] {
		j.Settings = copySettings(j.Settings)
		out = append(out, j)
	}
	return out
}

func copySettings(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
