package profilerun

import (
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/jobs"
)

// Env is what a profile's expressions read: the settings of the jobs the
// cluster knows (each worker's last report, replicated), and $state.
type Env struct {
	FSM *fsm.FSM
}

// Setting is the setting of job on unit, if that job runs there.
func (e Env) Setting(unit, job, setting string) (any, bool) {
	u, ok := e.FSM.UnitByName(unit)
	if !ok {
		return nil, false
	}
	for _, j := range e.FSM.JobRecords(u.NodeID) {
		if j.Name != job {
			continue
		}
		if setting == jobs.StateSetting {
			return j.State, true
		}
		v, ok := j.Settings[setting]
		return v, ok
	}
	return nil, false
}
