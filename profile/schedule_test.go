package profile

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// settings is an Env of fixed settings, "unit:job:setting" -> value.
type settings map[string]any

func (s settings) Setting(unit, job, setting string) (any, bool) {
	v, ok := s[unit+":"+job+":"+setting]
	return v, ok
}

func mustParse(t *testing.T, text string) *Profile {
	t.Helper()
	p, err := Parse([]byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func keys(steps []Step) []string {
	out := make([]string, 0, len(steps))
	for _, s := range steps {
		out = append(out, s.Key)
	}
	return out
}

// run plays a runner: at each tick of step it does every due step (marks
// and actions alike, recorded at the tick) until the run is complete or
// until is reached, and returns the keys in the order they were done.
func run(t *testing.T, p *Profile, rec Record, from, until, step time.Duration, env Env) []string {
	t.Helper()
	var order []string
	for now := from; now <= until; now += step {
		for {
			s, err := p.Schedule(now, rec, env)
			if err != nil {
				t.Fatalf("Schedule(%v): %v", now, err)
			}
			if s.Complete {
				return order
			}
			if len(s.Due) == 0 {
				break
			}
			for _, st := range s.Due {
				if off, ok := rec[st.Key]; ok && off != Claimed {
					t.Fatalf("step %s due again after it was done", st.Key)
				}
				if st.At > now {
					t.Fatalf("step %s due at %v, before its time %v", st.Key, now, st.At)
				}
				rec[st.Key] = now
				order = append(order, st.Key)
			}
		}
	}
	return order
}

const everyAction = `
version: "1.0"
experiment_profile_name: every action
common:
  jobs:
    stirring:
      actions:
        - type: start
          t: 0
          options: {target_rpm: 400}
        - type: log
          t: 10s
          options: {message: stirring started, level: NOTICE}
        - type: update
          t: 30s
          options: {target_rpm: 500}
        - type: pause
          t: 1m
        - type: resume
          hours_elapsed: 0.05
        - type: stop
          t: 0.1
pioreactors:
  pio01:
    label: first
    jobs:
      od_reading:
        actions:
          - type: start
            t: "0s"
            if: "${{ false }}"
            args: [--flag]
`

func TestScheduleEveryActionType(t *testing.T) {
	p := mustParse(t, everyAction)
	s, err := p.Schedule(0, Record{}, settings{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(s.Due), []string{"common/stirring/0", "pio01/od_reading/0"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("due at 0: %v, want %v", got, want)
	}
	if s.Next != 10*time.Second || s.Complete || s.Waiting {
		t.Fatalf("at 0: next %v complete %v waiting %v", s.Next, s.Complete, s.Waiting)
	}
	start, od := s.Due[0], s.Due[1]
	if start.Kind != "start" || start.Unit != "" || start.Job != "stirring" || start.Options["target_rpm"] != 400 {
		t.Errorf("the start step: %+v", start)
	}
	if od.Unit != "pio01" || od.If != "${{ false }}" || !reflect.DeepEqual(od.Args, []string{"--flag"}) {
		t.Errorf("the unit's step: %+v", od)
	}
	s, _ = p.Schedule(time.Hour, Record{}, settings{})
	want := []struct {
		key, kind string
		at        time.Duration
	}{
		{"common/stirring/0", "start", 0}, {"pio01/od_reading/0", "start", 0}, {"common/stirring/1", "log", 10 * time.Second},
		{"common/stirring/2", "update", 30 * time.Second}, {"common/stirring/3", "pause", time.Minute},
		{"common/stirring/4", "resume", 3 * time.Minute}, {"common/stirring/5", "stop", 6 * time.Minute},
	}
	if len(s.Due) != len(want) {
		t.Fatalf("due after an hour: %v", keys(s.Due))
	}
	for i, w := range want {
		if d := s.Due[i]; d.Key != w.key || d.Kind != w.kind || d.At != w.at {
			t.Errorf("step %d = %s %s at %v, want %s %s at %v", i, d.Key, d.Kind, d.At, w.key, w.kind, w.at)
		}
	}
	if l := s.Due[2]; l.Message != "stirring started" || l.Level != "NOTICE" {
		t.Errorf("the log step: %+v", l)
	}
	if order := run(t, p, Record{}, 0, time.Hour, 5*time.Second, settings{}); len(order) != len(want) {
		t.Errorf("a run did %v", order)
	}
	rec := Record{}
	for _, w := range want {
		rec[w.key] = w.at
	}
	if s, _ := p.Schedule(time.Hour, rec, settings{}); !s.Complete || len(s.Due) != 0 || s.Next != 0 {
		t.Errorf("with every step done: %+v", s)
	}
}

func TestScheduleRepeat(t *testing.T) {
	p := mustParse(t, `
version: "1.0"
experiment_profile_name: repeat
common:
  jobs:
    stirring:
      actions:
        - type: repeat
          t: 1m
          every: 10m
          max_time: 30m
          actions:
            - type: update
              t: 0
              options: {target_rpm: 500}
            - type: update
              t: 5m
              options: {target_rpm: 300}
`)
	s, err := p.Schedule(0, Record{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Due) != 0 || s.Next != time.Minute || s.Complete {
		t.Fatalf("before the repeat: %+v", s)
	}
	order := run(t, p, Record{}, 0, 2*time.Hour, time.Minute, nil)
	want := []string{"common/stirring/0/r0/0", "common/stirring/0/r0/1", "common/stirring/0/r1/0", "common/stirring/0/r1/1", "common/stirring/0/r2/0", "common/stirring/0/r2/1"}
	if !reflect.DeepEqual(order, want) {
		t.Fatalf("a run did %v, want %v", order, want)
	}
	s, _ = p.Schedule(time.Hour, Record{}, nil)
	for i, st := range s.Due {
		k := i / 2
		if at := time.Minute + time.Duration(k)*10*time.Minute + time.Duration(i%2)*5*time.Minute; st.At != at {
			t.Errorf("%s at %v, want %v", st.Key, st.At, at)
		}
	}
}

func TestScheduleRepeatWhile(t *testing.T) {
	// The test's expressions: "${{ more }}" is true while the env says so.
	defer func(e func(string, Env) (any, error)) { evalExpr = e }(evalExpr)
	evalExpr = func(expr string, env Env) (any, error) {
		v, _ := env.Setting("pio01", "stirring", "more")
		return v == true, nil
	}
	p := mustParse(t, `
version: "1.0"
experiment_profile_name: repeat while
pioreactors:
  pio01:
    jobs:
      stirring:
        actions:
          - type: repeat
            every: 1m
            while: "${{ more }}"
            actions:
              - type: log
                options: {message: again}
`)
	env := settings{"pio01:stirring:more": true}
	rec := Record{}
	order := run(t, p, rec, 0, 2*time.Minute, time.Minute, env)
	want := []string{"pio01/stirring/0/r0/go", "pio01/stirring/0/r0/0", "pio01/stirring/0/r1/go", "pio01/stirring/0/r1/0", "pio01/stirring/0/r2/go", "pio01/stirring/0/r2/0"}
	if !reflect.DeepEqual(order, want) {
		t.Fatalf("while true: %v, want %v", order, want)
	}
	if s, _ := p.Schedule(2*time.Minute+30*time.Second, rec, env); s.Complete || s.Next != 3*time.Minute {
		t.Fatalf("between iterations: %+v", s)
	}
	env["pio01:stirring:more"] = false
	order = run(t, p, rec, 3*time.Minute, time.Hour, time.Minute, env)
	if want := []string{"pio01/stirring/0/r3/end"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("while false: %v, want %v", order, want)
	}
	// Recorded, the decisions stand whatever the settings say now.
	env["pio01:stirring:more"] = true
	if s, _ := p.Schedule(time.Hour, rec, env); !s.Complete {
		t.Errorf("after the end mark, with while true again: %+v", s)
	}
	// An iteration begun (a step claimed) went on, though while is false now.
	env["pio01:stirring:more"] = false
	part := Record{"pio01/stirring/0/r0/0": Claimed}
	s, _ := p.Schedule(0, part, env)
	if got := keys(s.Due); !reflect.DeepEqual(got, []string{"pio01/stirring/0/r0/0"}) {
		t.Errorf("a claimed step of an iteration: due %v", got)
	}
}

func TestScheduleWhen(t *testing.T) {
	defer func(e func(string, Env) (any, error)) { evalExpr = e }(evalExpr)
	evalExpr = func(expr string, env Env) (any, error) {
		if strings.Contains(expr, "false") {
			return false, nil
		}
		v, ok := env.Setting("pio01", "od_reading", "od")
		return ok && v.(float64) > 1, nil
	}
	p := mustParse(t, `
version: "1.0"
experiment_profile_name: when
pioreactors:
  pio01:
    jobs:
      dosing_automation:
        actions:
          - type: when
            t: 1m
            wait_until: "${{ pio01:od_reading:od > 1 }}"
            actions:
              - type: start
                t: 30s
                options: {automation_name: chemostat}
              - type: stop
                t: 1h
          - type: when
            t: 0
            if: "false"
            wait_until: "${{ pio01:od_reading:od > 1 }}"
            actions:
              - type: log
                options: {message: never}
`)
	env := settings{"pio01:od_reading:od": 0.5}
	rec := Record{}
	s, err := p.Schedule(0, rec, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(s.Due); !reflect.DeepEqual(got, []string{"pio01/dosing_automation/1/skip"}) {
		t.Fatalf("at 0: due %v", got)
	}
	rec["pio01/dosing_automation/1/skip"] = 0
	s, _ = p.Schedule(2*time.Minute, rec, env)
	if len(s.Due) != 0 || !s.Waiting || s.Complete || s.Next != 0 {
		t.Fatalf("waiting: %+v", s)
	}
	env["pio01:od_reading:od"] = 1.5
	s, _ = p.Schedule(5*time.Minute, rec, env)
	if got := keys(s.Due); !reflect.DeepEqual(got, []string{"pio01/dosing_automation/0/when"}) || s.Due[0].Kind != KindMark {
		t.Fatalf("came true: due %v", s.Due)
	}
	rec["pio01/dosing_automation/0/when"] = 5*time.Minute + 2*time.Second
	env["pio01:od_reading:od"] = 0.1 // recorded: it stays true
	s, _ = p.Schedule(5*time.Minute+10*time.Second, rec, env)
	if len(s.Due) != 0 || s.Next != 5*time.Minute+32*time.Second {
		t.Fatalf("after the mark: %+v", s)
	}
	order := run(t, p, rec, 6*time.Minute, 2*time.Hour, time.Minute, env)
	if want := []string{"pio01/dosing_automation/0/0", "pio01/dosing_automation/0/1"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("the when's actions: %v, want %v", order, want)
	}
}

// TestScheduleReplay: a new leader that takes over with the record of the
// old one gives the same steps, each once, in the same order; a claimed step
// is due again.
func TestScheduleReplay(t *testing.T) {
	p := mustParse(t, everyAction+`
  pio02:
    jobs:
      stirring:
        actions:
          - type: repeat
            t: 20s
            every: 45s
            max_time: 3m
            actions:
              - type: log
                options: {message: tick}
`)
	whole := run(t, p, Record{}, 0, time.Hour, time.Second, nil)
	for cut := 1; cut < len(whole); cut++ {
		rec := Record{}
		for _, k := range whole[:cut] {
			rec[k] = 0
		}
		// The old leader claimed the next step and died.
		rec[whole[cut]] = Claimed
		s, err := p.Schedule(time.Hour, rec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := keys(s.Due); !reflect.DeepEqual(got, whole[cut:]) {
			t.Fatalf("after %d steps, the new leader's due: %v, want %v", cut, got, whole[cut:])
		}
		again, _ := p.Schedule(time.Hour, rec, nil)
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("Schedule is not deterministic")
		}
	}
}

func TestScheduleErrors(t *testing.T) {
	for _, text := range []string{
		"version: \"1.0\"\nexperiment_profile_name: x\ncommon:\n  jobs:\n    stirring:\n      actions:\n        - type: start\n          t: soon\n",
		"version: \"1.0\"\nexperiment_profile_name: x\ncommon:\n  jobs:\n    stirring:\n      actions:\n        - type: repeat\n          every: 0\n",
		"version: \"1.0\"\nexperiment_profile_name: x\ncommon:\n  jobs:\n    stirring:\n      actions:\n        - type: jump\n",
	} {
		// The parser refuses most; what it lets through, Schedule must.
		p, err := Parse([]byte(text))
		if err == nil {
			_, err = p.Schedule(time.Hour, Record{}, nil)
		}
		if err == nil {
			t.Errorf("%q: neither Parse nor Schedule refused it", text)
		}
	}
}

func TestPlan(t *testing.T) {
	p := mustParse(t, everyAction)
	steps, more, err := p.Plan(Record{"common/stirring/0": 0, "common/stirring/1": Claimed}, 20*time.Second, nil, 100)
	if err != nil || more {
		t.Fatalf("Plan: %v, more %v", err, more)
	}
	want := []string{"pio01/od_reading/0", "common/stirring/1", "common/stirring/2", "common/stirring/3", "common/stirring/4", "common/stirring/5"}
	if got := keys(steps); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan %v, want %v", got, want)
	}
	if steps[0].At != 20*time.Second || steps[2].At != 30*time.Second {
		t.Errorf("times: a late step at %v, the next at %v", steps[0].At, steps[2].At)
	}
	if steps, more, _ := p.Plan(Record{}, 0, nil, 3); len(steps) != 3 || !more {
		t.Errorf("a plan cut at 3: %d steps, more %v", len(steps), more)
	}
}
