package profile

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// Bounds Validate checks (the same as the state machine's, package fsm,
// which this package does not import: fsm may hold profiles).
const (
	maxJobNameLen    = 64   // fsm.MaxJobNameLen
	maxLabelLen      = 100  // fsm.MaxLabelLen
	maxLogMessageLen = 4096 // fsm.MaxLogMessageLen
)

// basicTypes are the actions a repeat may hold (Pioreactor's BasicAction).
var basicTypes = []string{TypeLog, TypeStart, TypePause, TypeStop, TypeUpdate, TypeResume}

// Validate checks what Pioreactor's validate.py checks, and what pio
// needs on top, and returns an Errors (each with the line and column Parse
// found it at; 0 and 0 for a profile not made by Parse) or nil:
//   - version is "1.0";
//   - every action has exactly one of t and hours_elapsed, and its times
//     are times (ParseTime); every, repeat_every_hours, max_time and
//     max_hours are more than zero; a repeat has every (or
//     repeat_every_hours) and holds only log, start, stop, pause, resume
//     and update; a when has wait_until (or condition);
//   - if, while, wait_until and condition, the ${{ ... }} values of options
//     and config_overrides, and the ${{ ... }} in a log's message parse
//     (ParseExpr);
//   - the units of pioreactors have valid names (those of pio's units) and
//     labels of at most 100 characters;
//   - plugins are refused: pio has none;
//   - a job that does more than log is one knownJob knows (nil knows all),
//     and job names are at most 64 characters.
//
// Like Pioreactor, it does not require a job's actions in time order (a
// run orders them by time), nor a start before a stop.
func (p *Profile) Validate(knownJob func(job string) bool) error {
	v := &validator{p: p, knownJob: knownJob}
	if p.Version != "1.0" {
		v.errf("version", `must be the text "1.0", not %q: a profile without version, from before Pioreactor 26.7, takes version: "1.0" as its first line`, p.Version)
	}
	for i, pl := range p.Plugins {
		v.errf(fmt.Sprintf("plugins[%d]", i), "needs the plugin %s: pio has no plugins, so it cannot run this profile", pl.Name)
	}
	v.jobs("common.jobs", p.Common.Jobs)
	for _, unit := range sortedKeys(p.Units) {
		path := "pioreactors." + unit
		if msg := validUnitName(unit); msg != "" {
			v.errf(path+"#key", "%s", msg)
		}
		b := p.Units[unit]
		if n := utf8.RuneCountInString(b.Label); n > maxLabelLen {
			v.errf(path+".label", "the label is %d characters long; at most %d are allowed", n, maxLabelLen)
		}
		v.jobs(path+".jobs", b.Jobs)
	}
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs.sorted()
}

type validator struct {
	p        *Profile
	knownJob func(string) bool
	errs     Errors
}

// errf records an error at path; a path ending in #key is the key of a
// mapping (the name of a unit or a job), and is shown without the #key.
func (v *validator) errf(path, format string, args ...any) {
	if len(v.errs) >= MaxErrors {
		return
	}
	shown := strings.TrimSuffix(path, "#key")
	msg := fmt.Sprintf(format, args...)
	if shown != "" {
		msg = shown + ": " + msg
	}
	e := &Error{Path: shown, Msg: msg}
	pos, ok := v.p.pos[path]
	if !ok {
		pos = v.p.pos[strings.TrimSuffix(path, "#key")]
	}
	// A field not given is reported where its parent is.
	for p := shown; !ok && p != ""; {
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			p = ""
		} else {
			p = p[:i]
		}
		pos, ok = v.p.pos[p]
	}
	e.Line, e.Column = pos.line, pos.col
	v.errs = append(v.errs, e)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (v *validator) jobs(path string, jobs map[string]Job) {
	for _, name := range sortedKeys(jobs) {
		jp := path + "." + name
		job := jobs[name]
		switch {
		case name == "" || len(name) > maxJobNameLen:
			v.errf(jp+"#key", "a job's name is 1 to %d characters", maxJobNameLen)
		case v.knownJob != nil && !onlyLogs(job.Actions) && !v.knownJob(name):
			v.errf(jp+"#key", "%s is not a job pio knows", name)
		}
		for i, a := range job.Actions {
			v.action(fmt.Sprintf("%s.actions[%d]", jp, i), a, "")
		}
	}
}

// onlyLogs reports whether actions only log (a job that only logs needs
// not exist: Pioreactor logs under any job name).
func onlyLogs(actions []Action) bool {
	for _, a := range actions {
		switch a.Type {
		case TypeLog:
		case TypeRepeat, TypeWhen:
			if !onlyLogs(a.Actions) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func (v *validator) action(path string, a Action, container string) {
	if !slices.Contains(actionTypes, a.Type) {
		v.errf(path+".type", "%q is not an action type: one of %s", a.Type, strings.Join(actionTypes, ", "))
		return
	}
	if container == TypeRepeat && !slices.Contains(basicTypes, a.Type) {
		v.errf(path+".type", "a repeat holds only %s actions, not %s", strings.Join(basicTypes, ", "), a.Type)
	}
	switch {
	case a.T != nil && a.HoursElapsed != nil:
		v.errf(path, "an action has t or hours_elapsed, not both")
	case a.T == nil && a.HoursElapsed == nil:
		v.errf(path, "an action must have its time, t (or hours_elapsed)")
	case a.T != nil:
		v.time(path+".t", a.T, false)
	default:
		v.time(path+".hours_elapsed", *a.HoursElapsed, false)
	}
	v.cond(path+".if", a.If)
	switch a.Type {
	case TypeRepeat:
		switch {
		case a.RepeatEveryHours != nil:
			v.time(path+".repeat_every_hours", *a.RepeatEveryHours, true)
		case a.Every != nil:
			v.time(path+".every", a.Every, true)
		default:
			v.errf(path, "a repeat must have every (or repeat_every_hours)")
		}
		if a.MaxHours != nil {
			v.time(path+".max_hours", *a.MaxHours, true)
		}
		if a.MaxTime != nil {
			v.time(path+".max_time", a.MaxTime, true)
		}
		v.cond(path+".while", a.While)
	case TypeWhen:
		if a.WaitUntil == "" && a.Condition == "" {
			v.errf(path, "a when must have wait_until (or condition)")
		}
		if a.WaitUntil != "" {
			v.cond(path+".wait_until", a.WaitUntil)
		}
		if a.Condition != "" {
			v.cond(path+".condition", a.Condition)
		}
	case TypeStart, TypeUpdate:
		v.options(path+".options", a.Options)
		v.options(path+".config_overrides", a.ConfigOverrides)
	case TypeLog:
		msg, ok := a.Options["message"].(string)
		if !ok {
			v.errf(path+".options", "a log action's options must have a message")
			break
		}
		if len(msg) > maxLogMessageLen {
			v.errf(path+".options.message", "the message is %d bytes long; at most %d are allowed", len(msg), maxLogMessageLen)
		}
		for _, e := range embeddedExprs(msg) {
			if err := ParseExpr(e); err != nil {
				v.errf(path+".options.message", "${{%s}}: %v", e, err)
			}
		}
		if lv, ok := a.Options["level"]; ok && !slices.Contains(logLevels, fmt.Sprint(lv)) {
			v.errf(path+".options.level", "%v is not a level: one of debug, info, notice, warning, error", lv)
		}
	}
	if a.Type != TypeRepeat && a.Type != TypeWhen && len(a.Actions) > 0 {
		v.errf(path+".actions", "a %s action holds no actions", a.Type)
	}
	for i, c := range a.Actions {
		v.action(fmt.Sprintf("%s.actions[%d]", path, i), c, a.Type)
	}
}

func (v *validator) time(path string, t any, positive bool) {
	d, err := ParseTime(t)
	switch {
	case err != nil:
		v.errf(path, "%v", err)
	case positive && d <= 0:
		v.errf(path, "must be more than zero")
	}
}

// cond checks a condition: nil (none), true, false or an expression.
func (v *validator) cond(path string, c any) {
	switch x := c.(type) {
	case nil, bool:
	case string:
		if err := ParseExpr(x); err != nil {
			v.errf(path, "%v", err)
		}
	default:
		v.errf(path, "must be true, false or an expression, not %T", c)
	}
}

// options checks the values of options that are whole ${{ ... }} expressions.
func (v *validator) options(path string, opts map[string]any) {
	for _, k := range sortedKeys(opts) {
		s, ok := opts[k].(string)
		if inner, wrapped := unwrap(s); ok && wrapped {
			if err := ParseExpr(inner); err != nil {
				v.errf(path+"."+k, "%v", err)
			}
		}
	}
}

// validUnitName is fsm.ValidUnitName's rule (1 to 63 letters, digits, '-'
// or '_', not an IP address, localhost or $broadcast).
func validUnitName(name string) string {
	ok := len(name) >= 1 && len(name) <= 63
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	switch {
	case !ok:
		return fmt.Sprintf("%q is not a unit name: 1 to 63 letters, digits, '-' or '_'", name)
	case net.ParseIP(name) != nil:
		return fmt.Sprintf("unit name %q is an IP address", name)
	case strings.EqualFold(name, "localhost"):
		return "unit name must not be localhost"
	}
	return ""
}

// Warnings are what Pioreactor's validate.py warns of, which does not stop
// a profile from running, with line and column as Validate's errors: a when
// with both wait_until and condition (wait_until is used), a repeat with
// both repeat_every_hours and every (repeat_every_hours is used), an action
// of a repeat later than the repeat's period (it never runs), and a stop,
// pause, resume or update of a job before any start of it. nil for none.
func (p *Profile) Warnings() Errors {
	v := &validator{p: p}
	each := func(path string, jobs map[string]Job) {
		for _, name := range sortedKeys(jobs) {
			jp := path + "." + name
			started := false
			for i, a := range jobs[name].Actions {
				ap := fmt.Sprintf("%s.actions[%d]", jp, i)
				switch a.Type {
				case TypeStart:
					started = true
				case TypeStop, TypePause, TypeResume, TypeUpdate:
					if !started {
						v.errf(ap, "this %s comes before any start of %s", a.Type, name)
					}
					if a.Type == TypeStop {
						started = false
					}
				}
				v.warnAction(ap, a)
			}
		}
	}
	each("common.jobs", p.Common.Jobs)
	for _, unit := range sortedKeys(p.Units) {
		each("pioreactors."+unit+".jobs", p.Units[unit].Jobs)
	}
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs.sorted()
}

func (v *validator) warnAction(path string, a Action) {
	switch a.Type {
	case TypeWhen:
		if a.WaitUntil != "" && a.Condition != "" {
			v.errf(path, "a when has both wait_until and condition: wait_until is used")
		}
	case TypeRepeat:
		if a.RepeatEveryHours != nil && a.Every != nil {
			v.errf(path, "a repeat has both repeat_every_hours and every: repeat_every_hours is used")
		}
		every, err := ParseTime(a.Every)
		if a.RepeatEveryHours != nil {
			every, err = ParseTime(*a.RepeatEveryHours)
		}
		if err != nil || every <= 0 {
			break
		}
		for i, c := range a.Actions {
			cp := fmt.Sprintf("%s.actions[%d]", path, i)
			t, field := c.T, "t"
			if t == nil && c.HoursElapsed != nil {
				t, field = *c.HoursElapsed, "hours_elapsed"
			}
			if d, err := ParseTime(t); err == nil && d > every {
				v.errf(cp+"."+field, "this action comes after the end of the repeat's period, so it never runs")
			}
		}
	}
	for i, c := range a.Actions {
		v.warnAction(fmt.Sprintf("%s.actions[%d]", path, i), c)
	}
}
