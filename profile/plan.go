package profile

import "time"

// Plan is what a run would do from elapsed on if every condition stayed as
// env has it now: the steps of successive schedules, each done at its time
// (a late one at elapsed), at most max of them. more is true when the plan
// was cut at max or stops at a condition that is waited on.
func (p *Profile) Plan(done Record, elapsed time.Duration, env Env, max int) (steps []Step, more bool, err error) {
	rec := make(Record, len(done))
	for k, v := range done {
		if v != Claimed {
			rec[k] = v
		}
	}
	at := elapsed
	for {
		s, err := p.Schedule(at, rec, env)
		if err != nil {
			return steps, false, err
		}
		for _, st := range s.Due {
			if len(steps) >= max {
				return steps, true, nil
			}
			if st.At < at {
				st.At = at
			}
			rec[st.Key] = st.At
			steps = append(steps, st)
		}
		switch {
		case s.Complete:
			return steps, false, nil
		case len(s.Due) > 0:
		case s.Next > at:
			at = s.Next
		default:
			return steps, s.Waiting, nil
		}
	}
}
