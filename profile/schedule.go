package profile

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Claimed is the offset a Record gives a step that a runner claimed and did
// not finish (it may have acted, then lost its leadership): the step is
// still due, but it counts as begun, so its repeat iteration happened.
const Claimed time.Duration = -1

// Kinds of steps besides the action types: a mark records a decision of the
// schedule (a repeat's iteration goes on or ends, a when came true or was
// skipped), so that every later schedule, on any node, decides the same.
const KindMark = "mark"

// Schedule says what a run of p must do once elapsed has passed since it
// started, given what it has done: the due steps in order (by time, then in
// profile order: common first, then the units by name; a block's jobs by
// name; a job's actions in order), when the next one falls due, and whether
// the run is complete. It is pure: the same profile, elapsed, record and
// settings give the same schedule. An expression (if, while, wait_until) is
// evaluated only when it is due and not yet decided; the decision is a mark
// step, which the runner records.
func (p *Profile) Schedule(elapsed time.Duration, done Record, env Env) (Schedule, error) {
	pl := &planner{elapsed: elapsed, done: done, env: env}
	if err := pl.block("common", "", p.Common); err != nil {
		return Schedule{}, err
	}
	units := make([]string, 0, len(p.Units))
	for u := range p.Units {
		units = append(units, u)
	}
	sort.Strings(units)
	for _, u := range units {
		if err := pl.block(u, u, p.Units[u]); err != nil {
			return Schedule{}, err
		}
	}
	var s Schedule
	sort.SliceStable(pl.steps, func(i, j int) bool { return pl.steps[i].At < pl.steps[j].At })
	for _, st := range pl.steps {
		off, ok := done[st.Key]
		switch {
		case ok && off != Claimed:
		case st.At <= elapsed:
			s.Due = append(s.Due, st)
		case s.Next == 0 || st.At < s.Next:
			s.Next = st.At
		}
	}
	if pl.later > 0 && (s.Next == 0 || pl.later < s.Next) {
		s.Next = pl.later
	}
	s.Known = pl.steps
	s.Waiting = pl.waiting
	s.Complete = len(s.Due) == 0 && s.Next == 0 && !pl.open && !pl.waiting
	return s, nil
}

// planner gathers the steps of a schedule.
type planner struct {
	elapsed time.Duration
	done    Record
	env     Env
	steps   []Step
	// later is the earliest time something not yet listed begins (a repeat's
	// next iteration, a when's time); 0 if none.
	later time.Duration
	// open is set when more is to come than the steps listed (a when whose
	// mark is not recorded yet); waiting when a condition is waited on.
	open, waiting bool
}

func (pl *planner) future(at time.Duration) {
	pl.open = true
	if pl.later == 0 || at < pl.later {
		pl.later = at
	}
}

func (pl *planner) has(key string) bool {
	_, ok := pl.done[key]
	return ok
}

func (pl *planner) block(name, unit string, b Block) error {
	jobs := make([]string, 0, len(b.Jobs))
	for j := range b.Jobs {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	for _, j := range jobs {
		for i, a := range b.Jobs[j].Actions {
			if err := pl.action(name+"/"+j+"/"+strconv.Itoa(i), unit, j, a, 0); err != nil {
				return fmt.Errorf("%s, job %s, action %d: %w", blockName(name, unit), j, i+1, err)
			}
		}
	}
	return nil
}

func blockName(name, unit string) string {
	if unit == "" {
		return name
	}
	return "pioreactors." + unit
}

// actionTime is an action's t (or hours_elapsed).
func actionTime(a Action) (time.Duration, error) {
	if a.T == nil && a.HoursElapsed != nil {
		return ParseTime(*a.HoursElapsed)
	}
	return ParseTime(a.T)
}

// exprText is an if/while as an expression's text: "" for none or true.
func exprText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		if x {
			return ""
		}
		return "false"
	case string:
		if strings.TrimSpace(x) == "" || strings.EqualFold(strings.TrimSpace(x), "true") {
			return ""
		}
		return x
	default:
		return fmt.Sprint(x)
	}
}

// truth evaluates expr ("" is true); an error is false, with why.
func (pl *planner) truth(expr string) (bool, string) {
	if expr == "" {
		return true, ""
	}
	v, err := evalExpr(expr, pl.env)
	if err != nil {
		return false, err.Error()
	}
	return truthy(v), "" // as Pioreactor, by Python's truth of the value
}

func (pl *planner) mark(key, unit, job, msg string, at time.Duration) {
	pl.steps = append(pl.steps, Step{Key: key, Unit: unit, Job: job, Kind: KindMark, At: at, Message: msg})
}

// action lists the steps of one action whose times count from base.
func (pl *planner) action(key, unit, job string, a Action, base time.Duration) error {
	t, err := actionTime(a)
	if err != nil {
		return err
	}
	at := base + t
	switch a.Type {
	case "start", "update", "stop", "pause", "resume", "log":
		st := Step{Key: key, Unit: unit, Job: job, Kind: a.Type, At: at, Args: a.Args, If: exprText(a.If)}
		if a.Type == "log" {
			st.Message, _ = a.Options["message"].(string)
			st.Level, _ = a.Options["level"].(string)
			if st.Level == "" {
				st.Level = "INFO"
			}
		} else if len(a.Options) > 0 {
			st.Options = a.Options
		}
		pl.steps = append(pl.steps, st)
		return nil
	case "repeat":
		return pl.repeat(key, unit, job, a, at)
	case "when":
		return pl.when(key, unit, job, a, at)
	default:
		return fmt.Errorf("unknown action type %q", a.Type)
	}
}

// evalExpr evaluates an expression; tests replace it.
var evalExpr = Eval

// maxIterations bounds the iterations of one repeat that a schedule lists.
const maxIterations = 100000

func (pl *planner) repeat(key, unit, job string, a Action, start time.Duration) error {
	var every time.Duration
	var err error
	if a.Every == nil && a.RepeatEveryHours != nil {
		every, err = ParseTime(*a.RepeatEveryHours)
	} else {
		every, err = ParseTime(a.Every)
	}
	if err != nil {
		return fmt.Errorf("every: %w", err)
	}
	if every <= 0 {
		return fmt.Errorf("a repeat needs every (or repeat_every_hours) above 0")
	}
	var maxT time.Duration
	bounded := a.MaxTime != nil || a.MaxHours != nil
	if a.MaxTime == nil && a.MaxHours != nil {
		maxT, err = ParseTime(*a.MaxHours)
	} else {
		maxT, err = ParseTime(a.MaxTime)
	}
	if err != nil {
		return fmt.Errorf("max_time: %w", err)
	}
	ifExpr, whileExpr := exprText(a.If), exprText(a.While)
	decide := ifExpr != "" || whileExpr != ""
	for k := 0; k < maxIterations; k++ {
		ks := start + time.Duration(k)*every
		if bounded && time.Duration(k)*every >= maxT {
			return nil
		}
		rk := key + "/r" + strconv.Itoa(k)
		if decide {
			switch {
			case pl.has(rk + "/end"):
				return nil
			case pl.has(rk+"/go") || pl.begun(rk+"/"):
			case ks > pl.elapsed:
				pl.future(ks)
				return nil
			default:
				ok, why := pl.truth(whileExpr)
				if k == 0 && ok {
					ok, why = pl.truth(ifExpr)
				}
				if !ok {
					pl.mark(rk+"/end", unit, job, strings.TrimSpace("the repeat ends "+why), ks)
					pl.open = true
					return nil
				}
				pl.mark(rk+"/go", unit, job, "", ks)
			}
		} else if ks > pl.elapsed {
			pl.future(ks)
			return nil
		}
		for j, c := range a.Actions {
			if c.Type == "repeat" || c.Type == "when" {
				return fmt.Errorf("a repeat's actions cannot be %s", c.Type)
			}
			if err := pl.action(rk+"/"+strconv.Itoa(j), unit, job, c, ks); err != nil {
				return fmt.Errorf("repeat action %d: %w", j+1, err)
			}
		}
	}
	return fmt.Errorf("a repeat of more than %d iterations", maxIterations)
}

// begun says whether a step under prefix was claimed or done.
func (pl *planner) begun(prefix string) bool {
	for k := range pl.done {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

func (pl *planner) when(key, unit, job string, a Action, at time.Duration) error {
	if pl.has(key + "/skip") {
		return nil
	}
	if off, ok := pl.done[key+"/when"]; ok && off != Claimed {
		for j, c := range a.Actions {
			if err := pl.action(key+"/"+strconv.Itoa(j), unit, job, c, off); err != nil {
				return fmt.Errorf("when action %d: %w", j+1, err)
			}
		}
		return nil
	}
	if at > pl.elapsed {
		pl.future(at)
		return nil
	}
	if ok, why := pl.truth(exprText(a.If)); !ok {
		pl.mark(key+"/skip", unit, job, strings.TrimSpace("skipped: if is false "+why), at)
		pl.open = true
		return nil
	}
	cond := a.WaitUntil
	if cond == "" {
		cond = a.Condition
	}
	if ok, _ := pl.truth(exprText(cond)); ok {
		pl.mark(key+"/when", unit, job, "the condition came true", pl.elapsed)
		pl.open = true
		return nil
	}
	pl.waiting = true
	return nil
}
