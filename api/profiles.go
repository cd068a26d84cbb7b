package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/jobs"
	"github.com/pioreactor/pio/profile"
	"github.com/pioreactor/pio/profilerun"
)

// Experiment profiles: Pioreactor's /api/experiment_profiles routes, its way
// of running one (PATCH /unit_api/jobs/run/job_name/experiment_profile with
// args ["execute", FILE, EXPERIMENT]) and of stopping one (PATCH
// /unit_api/jobs/stop with the run's job_id), and ours: validate, dry run,
// start and stop a run. Profiles and runs live in the replicated state; the
// leader's runner (package profilerun) does their steps.

// profileJob is the job name Pioreactor runs a profile as.
const profileJob = "experiment_profile"

// maxPlanSteps bounds the steps of a dry run and of a run's answer.
const maxPlanSteps = 500

// profileProblem answers for the errors of profiles and runs, and the rest as fail does.
func profileProblem(c *gin.Context, err error) {
	switch {
	case errors.Is(err, fsm.ErrProfileNotFound):
		abort(c, http.StatusNotFound, "profile not found", err.Error(), "list profiles with GET /api/experiment_profiles")
	case errors.Is(err, fsm.ErrProfileExists):
		abort(c, http.StatusBadRequest, "A profile already exists with that filename. Choose another.", err.Error(), "choose another filename, or edit it with PATCH /api/experiment_profiles/{filename}")
	case errors.Is(err, fsm.ErrRunNotFound):
		abort(c, http.StatusNotFound, "profile run not found", err.Error(), "list runs with GET /api/experiments/{exp}/experiment_profiles/recent")
	case errors.Is(err, fsm.ErrRunEnded):
		abort(c, http.StatusConflict, "profile run has ended", err.Error(), "start it again")
	case errors.Is(err, fsm.ErrTooMany):
		abort(c, http.StatusBadRequest, "too many", err.Error(), "delete profiles you no longer need, or stop runs")
	default:
		fail(c, err)
	}
}

// applyProfile proposes a command of profiles and runs; on failure it has answered.
func (s *Server) applyProfile(c *gin.Context, t fsm.CommandType, payload any) bool {
	return s.applyWith(c, t, payload, profileProblem)
}

// knownJob says whether pio runs a job of that name.
func knownJob(name string) bool {
	return !errors.Is(jobs.Check(name, nil, jobs.DefaultLimits()), jobs.ErrUnknownJob)
}

// profileError is one error of a profile, where it is.
type profileError struct {
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

// profileErrors lists the errors of a profile (profile.Errors, or one
// error) with their line and column.
func profileErrors(err error) []profileError {
	var errs profile.Errors
	if !errors.As(err, &errs) {
		var one *profile.Error
		if !errors.As(err, &one) {
			return []profileError{{Message: err.Error()}}
		}
		errs = profile.Errors{one}
	}
	out := make([]profileError, 0, len(errs))
	for _, e := range errs {
		msg := e.Msg
		if e.Path != "" && !strings.HasPrefix(msg, e.Path) { // Msg starts with its path, as a rule
			msg = e.Path + ": " + msg
		}
		out = append(out, profileError{Line: e.Line, Column: e.Column, Message: msg})
	}
	return out
}

// checkProfile parses and validates text; on failure it answers 400 with
// the errors, their lines and columns.
func checkProfile(c *gin.Context, text string) (*profile.Profile, bool) {
	if why := fsm.ValidProfileBody(text); why != "" {
		badField(c, "profile too large", why)
		return nil, false
	}
	p, err := profile.Parse([]byte(text))
	if err == nil {
		err = p.Validate(knownJob)
	}
	if err != nil {
		errs := profileErrors(err)
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "Validation error.", "status": http.StatusBadRequest,
			"cause": "Experiment profile failed validation: " + errs[0].Message, "remediation": "fix the errors listed (line and column) and retry",
			"errors": errs})
		return nil, false
	}
	return p, true
}

// checkFilename answers 400 for a filename Pioreactor would refuse.
func checkFilename(c *gin.Context, name string) bool {
	if why := fsm.ValidProfileFilename(name); why != "" {
		abort(c, http.StatusBadRequest, "Validation error: not a valid profile filename", why, "name it like my_profile.yaml")
		return false
	}
	return true
}

// profileListItem is one profile of GET /api/experiment_profiles, as Pioreactor's.
type profileListItem struct {
	ExperimentProfile *profile.Profile `json:"experimentProfile"`
	File              string           `json:"file"`
	Fullpath          string           `json:"fullpath"`
}

// listProfiles answers GET /api/experiment_profiles: the profiles that
// parse, newest first, as Pioreactor lists its files.
func (s *Server) listProfiles(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	files := s.fsm.Profiles()
	out := make([]profileListItem, 0, len(files))
	for i := range files {
		f := files[len(files)-1-i]
		p, err := profile.Parse([]byte(f.Body))
		if strings.TrimSpace(f.Body) == "" {
			p, err = &profile.Profile{Version: "1.0", Name: "temporary name: " + strings.TrimSuffix(strings.TrimSuffix(f.Filename, ".yaml"), ".yml")}, nil
		}
		if err != nil {
			continue
		}
		out = append(out, profileListItem{ExperimentProfile: p, File: f.Filename, Fullpath: "experiment_profiles/" + f.Filename})
	}
	sortByTime(out, files)
	c.JSON(http.StatusOK, out)
}

// sortByTime orders the list newest first (stable by filename).
func sortByTime(out []profileListItem, files []fsm.ProfileFile) {
	at := map[string]time.Time{}
	for _, f := range files {
		at[f.Filename] = f.UpdatedAt
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && at[out[j].File].After(at[out[j-1].File]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
}

// getProfile answers GET /api/experiment_profiles/{filename}: its text.
func (s *Server) getProfile(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	name := path.Base(c.Param("filename"))
	f, ok := s.fsm.Profile(name)
	if !ok {
		abort(c, http.StatusNotFound, "profile not found", quoteCut(name)+" is not stored", "list profiles with GET /api/experiment_profiles")
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(f.Body))
}

type createProfileBody struct {
	Filename string `json:"filename"`
	Body     string `json:"body"`
}

// createProfile answers POST /api/experiment_profiles {filename, body}.
func (s *Server) createProfile(c *gin.Context) {
	var b createProfileBody
	if !decodeBody(c, &b) {
		return
	}
	name := path.Base(b.Filename)
	if !checkFilename(c, name) {
		return
	}
	if _, ok := checkProfile(c, b.Body); !ok {
		return
	}
	if s.applyProfile(c, fsm.CmdPutProfile, fsm.PutProfile{Filename: name, Body: b.Body, Create: true}) {
		c.JSON(http.StatusOK, gin.H{"status": "success"})
	}
}

type editProfileBody struct {
	Body string `json:"body"`
}

// editProfile answers PATCH /api/experiment_profiles/{filename} {body}.
func (s *Server) editProfile(c *gin.Context) {
	var b editProfileBody
	if !decodeBody(c, &b) {
		return
	}
	name := path.Base(c.Param("filename"))
	if !checkFilename(c, name) {
		return
	}
	if _, ok := checkProfile(c, b.Body); !ok {
		return
	}
	if s.applyProfile(c, fsm.CmdPutProfile, fsm.PutProfile{Filename: name, Body: b.Body}) {
		c.JSON(http.StatusOK, gin.H{"status": "success"})
	}
}

// deleteProfile answers DELETE /api/experiment_profiles/{filename}.
func (s *Server) deleteProfile(c *gin.Context) {
	name := path.Base(c.Param("filename"))
	if !checkFilename(c, name) {
		return
	}
	if s.applyProfile(c, fsm.CmdDeleteProfile, fsm.ProfileRef{Filename: name}) {
		c.JSON(http.StatusOK, gin.H{"status": "success"})
	}
}

// validateProfile answers POST /api/experiment_profiles/validate {body}:
// 200 {"ok": true, "errors": []}, or 400 with the errors.
func (s *Server) validateProfile(c *gin.Context) {
	var b editProfileBody
	if !decodeBody(c, &b) {
		return
	}
	if _, ok := checkProfile(c, b.Body); ok {
		c.JSON(http.StatusOK, gin.H{"ok": true, "errors": []profileError{}})
	}
}

type dryRunBody struct {
	Body     string `json:"body"`
	Filename string `json:"filename"`
}

// planStep is a step of a plan or a run, with its state in a run.
type planStep struct {
	Key     string         `json:"key"`
	Unit    string         `json:"pioreactor_unit,omitempty"`
	Job     string         `json:"job_name,omitempty"`
	Kind    string         `json:"kind"`
	At      float64        `json:"at_seconds"`
	Options map[string]any `json:"options,omitempty"`
	Args    []string       `json:"args,omitempty"`
	If      string         `json:"if,omitempty"`
	Message string         `json:"message,omitempty"`
	State   string         `json:"state,omitempty"`
	DoneAt  *float64       `json:"done_at_seconds,omitempty"`
}

func toPlanStep(st profile.Step) planStep {
	return planStep{Key: st.Key, Unit: st.Unit, Job: st.Job, Kind: st.Kind, At: st.At.Seconds(), Options: st.Options, Args: st.Args, If: st.If, Message: st.Message}
}

// dryRunProfile answers POST /api/experiment_profiles/dry_run {body} or
// {filename}: the steps a run would do, with their times, were every
// condition to stay as it is now.
func (s *Server) dryRunProfile(c *gin.Context) {
	var b dryRunBody
	if !decodeBody(c, &b) {
		return
	}
	text := b.Body
	if b.Filename != "" {
		f, ok := s.fsm.Profile(path.Base(b.Filename))
		if !ok {
			abort(c, http.StatusNotFound, "profile not found", quoteCut(b.Filename)+" is not stored", "list profiles with GET /api/experiment_profiles")
			return
		}
		text = f.Body
	}
	p, ok := checkProfile(c, text)
	if !ok {
		return
	}
	steps, more, err := p.Plan(profile.Record{}, 0, profilerun.Env{FSM: s.fsm}, maxPlanSteps)
	if err != nil {
		abort(c, http.StatusBadRequest, "the profile cannot be planned", err.Error(), "fix the times of its actions")
		return
	}
	out := make([]planStep, 0, len(steps))
	for _, st := range steps {
		out = append(out, toPlanStep(st))
	}
	c.JSON(http.StatusOK, gin.H{"experiment_profile_name": p.Name, "steps": out, "more": more})
}

type startRunBody struct {
	Filename string `json:"filename"`
}

// runAnswer is a run as the API shows it: Pioreactor's fields of a running
// experiment_profile job and of a recent run, and ours.
type runAnswer struct {
	JobName    string         `json:"job_name"`
	Experiment string         `json:"experiment"`
	JobID      int64          `json:"job_id"`
	Settings   map[string]any `json:"settings"`
	StartedAt  time.Time      `json:"started_at"`
	Name       string         `json:"experiment_profile_name"`
	RunID      string         `json:"run_id"`
	Filename   string         `json:"profile_filename"`
	State      string         `json:"state"`
	EndedAt    *time.Time     `json:"ended_at"`
	Jobs       []fsm.RunJob   `json:"jobs"`
	Actions    []planStep     `json:"actions"`
}

// describeRun is run as an answer, with each known step and its state.
func (s *Server) describeRun(run fsm.ProfileRun, now time.Time) runAnswer {
	id, _ := strconv.ParseInt(run.RunID, 10, 64)
	done := 0
	for _, st := range run.Steps {
		if st.State != fsm.StepClaimed {
			done++
		}
	}
	a := runAnswer{JobName: profileJob, Experiment: run.Experiment, JobID: id, StartedAt: run.StartedAt, Name: run.Name,
		RunID: run.RunID, Filename: run.Filename, State: run.State, EndedAt: run.EndedAt, Jobs: run.Jobs, Actions: []planStep{},
		Settings: map[string]any{"experiment_profile_name": run.Name, "start_time_utc": run.StartedAt.Format(time.RFC3339Nano),
			"profile_filename": run.Filename, "action_count": done, "$state": "ready"}}
	p, err := profile.Parse([]byte(run.Text))
	if err != nil {
		return a
	}
	elapsed := now.Sub(run.StartedAt)
	if run.EndedAt != nil {
		elapsed = run.EndedAt.Sub(run.StartedAt)
	}
	sch, err := p.Schedule(elapsed, profilerun.Record(run), profilerun.Env{FSM: s.fsm})
	if err != nil {
		return a
	}
	for _, st := range sch.Known {
		if len(a.Actions) >= maxPlanSteps {
			break
		}
		ps := toPlanStep(st)
		if rec, ok := run.Steps[st.Key]; ok {
			ps.State, ps.Message = rec.State, rec.Message
			if rec.State != fsm.StepClaimed {
				d := rec.Offset.Seconds()
				ps.DoneAt = &d
			}
		} else if st.At <= elapsed {
			ps.State = "due"
		} else {
			ps.State = "planned"
		}
		a.Actions = append(a.Actions, ps)
	}
	return a
}

// runningProfiles answers GET /api/experiments/{exp}/experiment_profiles/running:
// the running runs, as Pioreactor lists its running experiment_profile jobs.
func (s *Server) runningProfiles(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	out := []runAnswer{}
	for _, r := range s.fsm.Runs(c.Param("exp")) {
		if r.State == fsm.RunRunning {
			out = append(out, s.describeRun(r, time.Now()))
		}
	}
	c.JSON(http.StatusOK, out)
}

// recentProfiles answers GET /api/experiments/{exp}/experiment_profiles/recent:
// the runs kept, newest first ({started_at, experiment_profile_name, experiment}, and ours).
func (s *Server) recentProfiles(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	out := []runAnswer{}
	for _, r := range s.fsm.Runs(c.Param("exp")) {
		out = append(out, s.describeRun(r, time.Now()))
	}
	c.JSON(http.StatusOK, out)
}

// startRun answers POST /api/experiments/{exp}/experiment_profiles/runs
// {filename}: 201 with the run. One run at a time per experiment.
func (s *Server) startRun(c *gin.Context) {
	var b startRunBody
	if !decodeBody(c, &b) {
		return
	}
	exp := c.Param("exp")
	name := path.Base(b.Filename)
	if !checkFilename(c, name) || !s.readable(c) {
		return
	}
	if _, ok := s.fsm.Experiment(exp); !ok {
		fail(c, fsm.ErrExperimentNotFound)
		return
	}
	f, ok := s.fsm.Profile(name)
	if !ok {
		profileProblem(c, fmt.Errorf("%w: %s", fsm.ErrProfileNotFound, quoteCut(name)))
		return
	}
	p, ok := checkProfile(c, f.Body)
	if !ok {
		return
	}
	for _, r := range s.fsm.Runs(exp) {
		if r.State == fsm.RunRunning {
			abort(c, http.StatusConflict, "a profile already runs on this experiment", fmt.Sprintf("%s (run %s) runs on %s", r.Filename, r.RunID, exp),
				"stop it first: POST /api/experiments/{exp}/experiment_profiles/runs/{run_id}/stop")
			return
		}
	}
	now := time.Now()
	id := strconv.FormatInt(now.UnixMicro(), 10)
	if !s.applyProfile(c, fsm.CmdStartRun, fsm.StartRun{RunID: id, Experiment: exp, Filename: name, Name: p.Name}) {
		return
	}
	run, _ := s.fsm.Run(id)
	c.JSON(http.StatusCreated, s.describeRun(run, now))
}

// stopRun answers POST /api/experiments/{exp}/experiment_profiles/runs/{id}/stop:
// the run stops, and so do the jobs it started that still run in its experiment.
func (s *Server) stopRun(c *gin.Context) {
	run, ok := s.fsm.Run(c.Param("id"))
	if !ok || run.Experiment != c.Param("exp") {
		profileProblem(c, fmt.Errorf("%w: %s in %s", fsm.ErrRunNotFound, quoteCut(c.Param("id")), quoteCut(c.Param("exp"))))
		return
	}
	if !s.applyProfile(c, fsm.CmdStopRun, fsm.RunRef{RunID: run.RunID}) {
		return
	}
	stopped, failed := s.stopRunJobs(c.Request.Context(), run)
	c.JSON(http.StatusOK, gin.H{"status": "success", "run_id": run.RunID, "stopped": stopped, "failed": failed})
}

// stopRunJobs stops the jobs a run started, where they still run in its
// experiment (a unit's stop with the job's name and the experiment as filter).
func (s *Server) stopRunJobs(ctx context.Context, run fsm.ProfileRun) (stopped, failed []string) {
	stopped, failed = []string{}, []string{}
	for _, j := range run.Jobs {
		u, ok := s.fsm.UnitByName(j.Unit)
		if !ok {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.callUnit(cctx, u.RaftAddr, http.MethodPost, "/unit_api/jobs/stop", gin.H{"job_name": j.Job, "experiment": run.Experiment}, nil, s.fsm.AppliedIndex())
		cancel()
		if err != nil {
			failed = append(failed, j.Unit+"/"+j.Job+": "+errCause(err))
			continue
		}
		stopped = append(stopped, j.Unit+"/"+j.Job)
	}
	return stopped, failed
}

// executeBody is Pioreactor's body of a run of experiment_profile on the unit API.
type executeBody struct {
	Args    []string       `json:"args"`
	Options map[string]any `json:"options"`
}

// executeProfile answers PATCH/POST /unit_api/jobs/run/job_name/experiment_profile
// {args: ["execute", FILE, EXPERIMENT], options: {"dry-run"?}}, as Pioreactor's
// UI runs a profile: a 202 task whose result is {ok: true, ...} once the
// leader has started the run (or, dry, planned it).
func (s *Server) executeProfile(c *gin.Context) {
	var b executeBody
	if !decodeBodyIgnoringUnknown(c, &b) {
		return
	}
	if len(b.Args) != 3 || b.Args[0] != "execute" {
		abort(c, http.StatusBadRequest, "bad experiment_profile request", "args must be [\"execute\", FILENAME, EXPERIMENT]",
			`send {"args": ["execute", "demo.yaml", "exp1"], "options": {}}`)
		return
	}
	name, exp := path.Base(b.Args[1]), b.Args[2]
	if !checkFilename(c, name) {
		return
	}
	if why := fsm.ValidExperimentName(exp); why != "" {
		abort(c, http.StatusBadRequest, "invalid experiment name", why, "give the experiment's name as the third arg")
		return
	}
	_, dry := b.Options["dry-run"]
	if !dry {
		_, dry = b.Options["dry_run"]
	}
	route, body := "/api/experiments/"+url.PathEscape(exp)+"/experiment_profiles/runs", any(startRunBody{Filename: name})
	if dry {
		route, body = "/api/experiment_profiles/dry_run", dryRunBody{Filename: name}
	}
	c.JSON(http.StatusAccepted, s.tasks.run(s.cfg.Name, func(ctx context.Context) (any, error) {
		var out map[string]any
		if err := s.toLeader(ctx, http.MethodPost, route, body, &out); err != nil {
			return nil, err
		}
		out["ok"] = true
		return out, nil
	}))
}

// toLeader sends a request to the leader's /api (this node's own, when it leads) as a member.
func (s *Server) toLeader(ctx context.Context, method, route string, in, out any) error {
	_, addr := s.node.Leader()
	if addr == "" {
		return fmt.Errorf("the cluster has no leader")
	}
	return s.rpc.Do(ctx, addr, method, route, nil, in, out)
}

// stopProfileRuns stops runs for PATCH /unit_api/jobs/stop when the filter
// names the experiment_profile job or a run's job_id, as Pioreactor's UI
// stops a profile; it returns false when the filter is not about runs.
func (s *Server) stopProfileRuns(c *gin.Context, b stopJobsBody) bool {
	byName := b.JobName != nil && *b.JobName == profileJob
	var ids []string
	for _, r := range s.fsm.Runs("") {
		if r.State != fsm.RunRunning {
			continue
		}
		id, _ := strconv.ParseInt(r.RunID, 10, 64)
		if b.JobID != nil && *b.JobID != 0 && *b.JobID != id {
			continue
		}
		if b.Experiment != nil && *b.Experiment != "" && *b.Experiment != r.Experiment {
			continue
		}
		if byName || b.JobID != nil && *b.JobID == id {
			ids = append(ids, r.Experiment+"/"+r.RunID)
		}
	}
	if !byName && len(ids) == 0 {
		return false
	}
	c.JSON(http.StatusAccepted, s.tasks.run(s.cfg.Name, func(ctx context.Context) (any, error) {
		stopped := []string{}
		for _, ref := range ids {
			exp, id, _ := strings.Cut(ref, "/")
			var out map[string]any
			if err := s.toLeader(ctx, http.MethodPost, "/api/experiments/"+url.PathEscape(exp)+"/experiment_profiles/runs/"+id+"/stop", struct{}{}, &out); err != nil {
				return nil, err
			}
			stopped = append(stopped, profileJob)
		}
		return gin.H{"stopped": stopped}, nil
	}))
	return true
}
