// Package profilerun runs experiment profiles on the leader: it owns one
// goroutine that, while this node leads, takes every running run of the
// replicated state, asks its schedule (package profile) what is due, and for
// each due step claims it (a committed command), acts, and records it done
// or skipped. What a run has done lives in the replicated state, so a new
// leader carries every run on where the old one left it: a step claimed and
// not finished is acted again, and every act is idempotent (a start of a
// running job, a stop of a stopped one, a setting set twice, a log line with
// the step's request ID, which the state machine applies once).
package profilerun

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/jobs"
	"github.com/pioreactor/pio/profile"
	"github.com/pioreactor/pio/rpc"
)

// Raft is what the runner needs of this node's Raft peer (cluster.Node).
type Raft interface {
	FSM() *fsm.FSM
	Apply(cmd fsm.Command) (fsm.Result, error)
	IsLeader() bool
	Barrier(timeout time.Duration) error
	OnLeaderChange(fn func(leaderID string)) (stop func())
}

// Caller makes node-to-node calls to a unit's /unit_api (rpc.Client).
type Caller interface {
	Do(ctx context.Context, addr, method, path string, hdr http.Header, in, out any) error
}

// Config configures a Runner.
type Config struct {
	// Name is this node's unit name: log lines of a run with no unit to
	// name (a common step with no worker) are this node's.
	Name   string
	Node   Raft
	Caller Caller
	// Alive says whether gossip sees a node as alive; nil: every node is.
	Alive func(nodeID string) bool
	// Poll is how often a when's condition is looked at again (default 5 s).
	Poll   time.Duration
	Logger *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Task is the task (job name) of a run's log lines, as Pioreactor's.
const Task = "experiment_profile"

// Runner runs the profiles of the cluster while this node leads.
type Runner struct {
	cfg    Config
	fsm    *fsm.FSM
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	stops  []func()
	once   sync.Once
	// parsed caches each run's profile, by run ID (only the runner's goroutine uses it).
	parsed map[string]*profile.Profile
}

// Start starts the runner's goroutine; Close stops it.
func Start(cfg Config) *Runner {
	if cfg.Poll <= 0 {
		cfg.Poll = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{cfg: cfg, fsm: cfg.Node.FSM(), wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
		parsed: map[string]*profile.Profile{}}
	r.stops = append(r.stops, cfg.Node.OnLeaderChange(func(string) { r.poke() }))
	r.stops = append(r.stops, r.fsm.Subscribe(func(c fsm.Change) {
		if c.Cmd == nil || wakers[c.Cmd.Type] {
			r.poke()
		}
	}))
	go r.loop(ctx)
	return r
}

// wakers are the commands after which the runner looks at its runs again.
var wakers = map[fsm.CommandType]bool{fsm.CmdStartRun: true, fsm.CmdStopRun: true, fsm.CmdCompleteRun: true}

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close stops the runner and waits for its goroutine.
func (r *Runner) Close() {
	r.once.Do(func() {
		for _, s := range r.stops {
			s()
		}
		r.cancel()
		<-r.done
	})
}

func (r *Runner) loop(ctx context.Context) {
	defer close(r.done)
	leading := false
	for {
		var wait time.Duration
		switch {
		case !r.cfg.Node.IsLeader():
			leading = false
		case !leading:
			// A new leader applies what the old one committed before it reads the runs.
			if err := r.cfg.Node.Barrier(5 * time.Second); err != nil {
				wait = time.Second
				break
			}
			leading = true
			fallthrough
		default:
			wait = r.pass(ctx)
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// pass does every due step of every running run and returns how long to
// wait for the next one (0: until something changes).
func (r *Runner) pass(ctx context.Context) time.Duration {
	var wait time.Duration
	soonest := func(d time.Duration) {
		if d <= 0 {
			d = time.Millisecond
		}
		if wait == 0 || d < wait {
			wait = d
		}
	}
	live := map[string]bool{}
	for _, run := range r.fsm.Runs("") {
		if run.State != fsm.RunRunning {
			continue
		}
		live[run.RunID] = true
		if ctx.Err() != nil || !r.cfg.Node.IsLeader() {
			return 0
		}
		next, waiting, err := r.advance(ctx, run)
		if err != nil {
			if !errors.Is(err, errLost) {
				r.cfg.Logger.Warn("profile run", "run", run.RunID, "experiment", run.Experiment, "error", err)
				soonest(time.Second)
			}
			continue
		}
		if next > 0 {
			soonest(next)
		}
		if waiting {
			soonest(r.cfg.Poll)
		}
	}
	for id := range r.parsed {
		if !live[id] {
			delete(r.parsed, id)
		}
	}
	return wait
}

// errLost says the run changed under the runner (it ended, or this node no longer leads).
var errLost = errors.New("the run ended or the leadership was lost")

// Record is what a run has recorded, as its schedule reads it.
func Record(run fsm.ProfileRun) profile.Record {
	rec := make(profile.Record, len(run.Steps))
	for k, s := range run.Steps {
		if s.State == fsm.StepClaimed {
			rec[k] = profile.Claimed
		} else {
			rec[k] = s.Offset
		}
	}
	return rec
}

// advance does the due steps of one run; it returns how long until the
// next is due (0: none planned) and whether a condition is waited on.
func (r *Runner) advance(ctx context.Context, run fsm.ProfileRun) (time.Duration, bool, error) {
	p, ok := r.parsed[run.RunID]
	if !ok {
		var err error
		if p, err = profile.Parse([]byte(run.Text)); err != nil {
			r.logLines(run, "parse", []string{""}, "ERROR", []string{"the profile " + run.Filename + " cannot be read; the run stops: " + err.Error()})
			r.apply(fsm.CmdStopRun, reqID(run.RunID, "stop-unreadable"), fsm.RunRef{RunID: run.RunID})
			return 0, false, err
		}
		r.parsed[run.RunID] = p
	}
	env := Env{FSM: r.fsm}
	elapsed := r.cfg.Now().Sub(run.StartedAt)
	s, err := p.Schedule(elapsed, Record(run), env)
	if err != nil {
		r.logLines(run, "schedule", []string{""}, "ERROR", []string{"the profile's schedule fails; the run stops: " + err.Error()})
		r.apply(fsm.CmdStopRun, reqID(run.RunID, "stop-schedule"), fsm.RunRef{RunID: run.RunID})
		return 0, false, err
	}
	for _, st := range s.Due {
		if ctx.Err() != nil || !r.cfg.Node.IsLeader() {
			return 0, false, errLost
		}
		if err := r.step(ctx, run, st); err != nil {
			return 0, false, err
		}
	}
	if len(s.Due) > 0 {
		return time.Millisecond, false, nil // look again: the steps done may have made more known
	}
	if s.Complete {
		r.logLines(run, "complete", []string{""}, "NOTICE", []string{"Finished profile " + profileName(run) + "."})
		if err := r.apply(fsm.CmdCompleteRun, reqID(run.RunID, "complete"), fsm.RunRef{RunID: run.RunID}); err != nil {
			return 0, false, err
		}
		return 0, false, nil
	}
	var next time.Duration
	if s.Next > 0 {
		next = s.Next - r.cfg.Now().Sub(run.StartedAt)
	}
	return next, s.Waiting, nil
}

func profileName(run fsm.ProfileRun) string {
	if run.Name != "" {
		return run.Name
	}
	return run.Filename
}

// reqID is a request ID made of parts: the same parts, the same ID, on every leader.
func reqID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "pr-" + hex.EncodeToString(h[:20])
}

// apply proposes a command; a run that ended, or a lost leadership, is errLost.
func (r *Runner) apply(t fsm.CommandType, id string, payload any) error {
	cmd, err := fsm.NewCommand(t, id, r.cfg.Now(), payload)
	if err != nil {
		return err
	}
	res, err := r.cfg.Node.Apply(cmd)
	if err == nil {
		err = res.Err
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fsm.ErrRunEnded), errors.Is(err, fsm.ErrRunNotFound), !r.cfg.Node.IsLeader():
		return errLost
	}
	return err
}

// step claims, does and finishes one step.
func (r *Runner) step(ctx context.Context, run fsm.ProfileRun, st profile.Step) error {
	offset := func() time.Duration { return r.cfg.Now().Sub(run.StartedAt) }
	if st.Kind == profile.KindMark {
		return r.apply(fsm.CmdFinishStep, reqID(run.RunID, st.Key, "finish"),
			fsm.StepUpdate{RunID: run.RunID, Key: st.Key, State: fsm.StepDone, Offset: offset(), Message: cut(st.Message)})
	}
	if err := r.apply(fsm.CmdClaimStep, reqID(run.RunID, st.Key, "claim"), fsm.StepUpdate{RunID: run.RunID, Key: st.Key}); err != nil {
		return err
	}
	state, msg, started := r.act(ctx, run, st)
	return r.apply(fsm.CmdFinishStep, reqID(run.RunID, st.Key, "finish"),
		fsm.StepUpdate{RunID: run.RunID, Key: st.Key, State: state, Offset: offset(), Message: cut(msg), Started: started})
}

func cut(s string) string {
	if len(s) > fsm.MaxLogMessageLen {
		return s[:fsm.MaxLogMessageLen]
	}
	return s
}

// target is a unit a step acts on.
type target struct {
	name, addr string
}

// targets are the units a step acts on now: its unit, or (common) every
// active worker assigned to the run's experiment; the others, with why.
func (r *Runner) targets(run fsm.ProfileRun, st profile.Step) (ok []target, skipped []string) {
	check := func(u fsm.Unit) string {
		switch {
		case !u.Worker:
			return "it is not a worker"
		case u.IsActive != 1:
			return "it is inactive"
		case r.fsm.ExperimentOf(u.NodeID) != run.Experiment:
			return "it is not assigned to " + run.Experiment
		case r.cfg.Alive != nil && !r.cfg.Alive(u.NodeID):
			return "it is not reachable (dead or gone)"
		}
		return ""
	}
	if st.Unit != "" {
		u, found := r.fsm.UnitByName(st.Unit)
		if !found {
			return nil, []string{st.Unit + " (not in the cluster)"}
		}
		if why := check(u); why != "" {
			return nil, []string{st.Unit + " (" + why + ")"}
		}
		return []target{{u.Name, u.RaftAddr}}, nil
	}
	units := r.fsm.Units()
	sort.Slice(units, func(i, j int) bool { return units[i].Name < units[j].Name })
	for _, u := range units {
		if r.fsm.ExperimentOf(u.NodeID) != run.Experiment {
			continue
		}
		if why := check(u); why != "" {
			skipped = append(skipped, u.Name+" ("+why+")")
			continue
		}
		ok = append(ok, target{u.Name, u.RaftAddr})
	}
	return ok, skipped
}

// act does a claimed step: it returns its state (done or skipped), what
// happened, and the jobs it started.
func (r *Runner) act(ctx context.Context, run fsm.ProfileRun, st profile.Step) (string, string, []fsm.RunJob) {
	targets, skipped := r.targets(run, st)
	if len(skipped) > 0 {
		r.logLines(run, st.Key+"\x00skipped", []string{""}, "WARNING",
			[]string{fmt.Sprintf("%s %s of %s skipped on %s", st.Kind, st.Job, profileName(run), strings.Join(skipped, ", "))})
	}
	if len(targets) == 0 {
		return fsm.StepSkipped, "no unit to act on: " + strings.Join(skipped, ", "), nil
	}
	// As Pioreactor runs a common action on each unit, its if, options and
	// message are read on each unit: unit() and ::job:setting mean that unit.
	var units []target
	var steps []profile.Step
	var why []string
	for _, u := range targets {
		env := r.env(run, st, u.name)
		if st.If != "" {
			b, err := profile.EvalBool(st.If, env)
			if err != nil {
				why = append(why, u.name+": if cannot be evaluated: "+err.Error())
				continue
			}
			if !b {
				why = append(why, u.name+": if is false: "+st.If)
				continue
			}
		}
		us := st
		if len(st.Options) > 0 {
			opts, err := profile.EvalOptions(st.Options, env)
			if err != nil {
				why = append(why, u.name+": options: "+err.Error())
				continue
			}
			us.Options = opts
		}
		if st.Kind == "log" {
			msg, err := profile.ExpandMessage(st.Message, env) // ${{ ... }} in the message, as Pioreactor
			if err != nil {
				msg = st.Message + " (" + err.Error() + ")"
			}
			us.Message = msg
		}
		units, steps = append(units, u), append(steps, us)
	}
	if len(units) == 0 {
		return fsm.StepSkipped, strings.Join(why, "; "), nil
	}
	if st.Kind == "log" {
		names, msgs := make([]string, len(units)), make([]string, len(units))
		for i, u := range units {
			names[i], msgs[i] = u.name, steps[i].Message
		}
		level := strings.ToUpper(st.Level)
		if _, ok := fsm.LogLevels[level]; !ok {
			level = "INFO"
		}
		if err := r.logLines(run, st.Key, names, level, msgs); err != nil {
			return fsm.StepSkipped, "the log line was not written: " + err.Error(), nil
		}
		return fsm.StepDone, "logged on " + strings.Join(names, ", "), nil
	}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		done    []string
		failed  []string
		started []fsm.RunJob
	)
	for i, u := range units {
		wg.Add(1)
		go func(u target, st profile.Step) {
			defer wg.Done()
			err := r.dispatch(ctx, run, st, u)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, u.name+": "+err.Error())
				return
			}
			done = append(done, u.name)
			if st.Kind == "start" {
				started = append(started, fsm.RunJob{Unit: u.name, Job: st.Job})
			}
		}(u, steps[i])
	}
	wg.Wait()
	sort.Strings(done)
	sort.Strings(failed)
	sort.Slice(started, func(i, j int) bool { return started[i].Unit < started[j].Unit })
	msg := fmt.Sprintf("%s %s on %s", st.Kind, st.Job, strings.Join(done, ", "))
	if len(failed) > 0 {
		r.logLines(run, st.Key+"\x00failed", []string{""}, "ERROR",
			[]string{fmt.Sprintf("%s %s of %s failed on %s", st.Kind, st.Job, profileName(run), strings.Join(failed, "; "))})
		msg += "; failed on " + strings.Join(failed, "; ")
	}
	if len(done) == 0 {
		return fsm.StepSkipped, msg, nil
	}
	return fsm.StepDone, msg, started
}

// env is what a step's expressions read on unit: the cluster's job
// settings, and unit(), experiment(), job_name() and hours_elapsed().
func (r *Runner) env(run fsm.ProfileRun, st profile.Step, unit string) profile.Env {
	return profile.WithVars(Env{FSM: r.fsm}, map[string]any{"unit": unit, "experiment": run.Experiment, "job_name": st.Job,
		"hours_elapsed": r.cfg.Now().Sub(run.StartedAt).Hours()})
}

// dispatch sends one step to one unit's /unit_api. A start of a job that
// runs, a stop of one that does not, are done: every act may be repeated.
func (r *Runner) dispatch(ctx context.Context, run fsm.ProfileRun, st profile.Step, u target) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hdr := http.Header{"X-Pio-Index": {strconv.FormatUint(r.fsm.AppliedIndex(), 10)}}
	job := url.PathEscape(st.Job)
	var err error
	switch st.Kind {
	case "start":
		body := map[string]any{"experiment": run.Experiment, "options": st.Options, "args": st.Args}
		err = r.cfg.Caller.Do(ctx, u.addr, http.MethodPost, "/unit_api/jobs/run/job_name/"+job, hdr, body, nil)
		if status(err) == http.StatusConflict && strings.Contains(err.Error(), "already running") {
			err = nil
		}
	case "stop":
		err = r.cfg.Caller.Do(ctx, u.addr, http.MethodPost, "/unit_api/jobs/stop/job_name/"+job, hdr, struct{}{}, nil)
		if status(err) == http.StatusNotFound {
			err = nil
		}
	case "update", "pause", "resume":
		set := st.Options
		switch st.Kind {
		case "pause":
			set = map[string]any{jobs.StateSetting: jobs.StateSleeping}
		case "resume":
			set = map[string]any{jobs.StateSetting: jobs.StateReady}
		}
		err = r.cfg.Caller.Do(ctx, u.addr, http.MethodPatch, "/unit_api/jobs/update/job_name/"+job, hdr, map[string]any{"settings": set}, nil)
	default:
		err = fmt.Errorf("unknown step kind %q", st.Kind)
	}
	return err
}

// status is the HTTP status of a node-to-node call's error (0 if none).
func status(err error) int {
	var e *rpc.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// logLines writes a line of the run to the experiment's logs, one per unit
// ("" is this node), with a request ID made of the run and key: written once
// whichever leader writes it.
func (r *Runner) logLines(run fsm.ProfileRun, key string, units []string, level string, msgs []string) error {
	now := r.cfg.Now().UTC()
	var b fsm.RecordReadings
	for i, u := range units {
		if u == "" {
			u = r.cfg.Name
		}
		msg := msgs[0]
		if i < len(msgs) {
			msg = msgs[i]
		}
		b.Logs = append(b.Logs, fsm.LogEntry{Time: now, Level: level, Unit: u, Message: cut(msg), Task: Task, Experiment: run.Experiment})
	}
	return r.apply(fsm.CmdRecordReadings, reqID(run.RunID, key, "log"), b)
}
