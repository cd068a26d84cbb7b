package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/jobs"
	"github.com/pioreactor/pio/membership"
	"github.com/pioreactor/pio/worker"
)

// jobProblem maps the runtime's errors to answers.
func jobProblem(c *gin.Context, err error) {
	switch {
	case errors.Is(err, jobs.ErrUnknownJob), errors.Is(err, jobs.ErrBadSetting):
		abort(c, http.StatusBadRequest, "bad job request", err.Error(), "GET /api/jobs/descriptors lists each job, its settings and their ranges")
	case errors.Is(err, jobs.ErrAlreadyRunning):
		abort(c, http.StatusConflict, "job already running", err.Error(), "update its settings, or stop it first")
	case errors.Is(err, jobs.ErrNotRunning):
		abort(c, http.StatusNotFound, "job not running", err.Error(), "list running jobs with GET /api/workers/{unit}/jobs/running")
	case errors.Is(err, jobs.ErrNoSensor):
		abort(c, http.StatusConflict, "this unit cannot run that job", err.Error(),
			"run `pio hardware check` on the unit to see what its HAT lacks; GET /unit_api/jobs/descriptors lists the jobs it can run")
	case errors.Is(err, worker.ErrNotAllowed):
		abort(c, http.StatusNotFound, "not found, not active, or not assigned", err.Error(), "make the unit active and assign it to the experiment first")
	default:
		fail(c, err)
	}
}

// --- this node's worker side ---

// unitRunBody is the body of a run: Pioreactor's fields (options, env,
// args, config_overrides, with its types; other fields are ignored, as
// Pioreactor does) and the experiment, which the leader sets from the path.
// A unit asked directly takes the experiment from env EXPERIMENT, as
// Pioreactor's unit API does.
type unitRunBody struct {
	Experiment      string            `json:"experiment"`
	Options         map[string]any    `json:"options"`
	Env             map[string]string `json:"env"`
	Args            []string          `json:"args"`
	ConfigOverrides [][]string        `json:"config_overrides"`
}

func (s *Server) noJobs(c *gin.Context) bool {
	if s.cfg.Jobs == nil || !s.isWorker() {
		abort(c, http.StatusNotFound, "not a worker", s.cfg.Name+" runs no activities (--worker=false)", "run jobs on a worker")
		return true
	}
	return false
}

func (s *Server) isWorker() bool {
	u, ok := s.fsm.UnitByID(s.cfg.NodeID)
	return !ok || u.Worker
}

func (s *Server) unitRunning(c *gin.Context) {
	if s.noJobs(c) {
		return
	}
	c.JSON(http.StatusOK, s.jobRows(func(jobs.Info) bool { return true }))
}

// indexHeader carries the leader's applied index with a dispatch: the worker
// waits until its own copy of the database has caught up to it before it
// checks whether it may run the job.
const indexHeader = "X-Pio-Index"

// catchUp waits (up to 2 s) until this node's state machine has applied the
// index the leader sent: the leader's own last applied command, which this
// node's state machine applies too (a wait on a notification).
func (s *Server) catchUp(c *gin.Context) {
	want, err := strconv.ParseUint(c.GetHeader(indexHeader), 10, 64)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	_, _ = s.fsm.WaitApplied(ctx, want)
}

func (s *Server) unitRun(c *gin.Context) {
	if c.Param("job") == profileJob {
		s.executeProfile(c) // a profile runs on the leader, whichever node is asked
		return
	}
	if s.noJobs(c) {
		return
	}
	s.catchUp(c)
	var b unitRunBody
	if !decodeBodyIgnoringUnknown(c, &b) {
		return
	}
	if b.Experiment == "" {
		b.Experiment = b.Env["EXPERIMENT"]
	}
	info, err := s.cfg.Jobs.Start(c.Param("job"), b.Experiment, b.Options)
	if err != nil {
		jobProblem(c, err)
		return
	}
	c.JSON(http.StatusOK, info)
}

type settingsBody struct {
	Settings map[string]any `json:"settings"`
}

func (s *Server) unitUpdate(c *gin.Context) {
	if s.noJobs(c) {
		return
	}
	var b settingsBody
	if !decodeBody(c, &b) {
		return
	}
	info, err := s.cfg.Jobs.Update(c.Param("job"), b.Settings)
	if err != nil {
		jobProblem(c, err)
		return
	}
	c.JSON(http.StatusOK, info)
}

func (s *Server) unitStop(c *gin.Context) {
	if s.noJobs(c) {
		return
	}
	if err := s.cfg.Jobs.Stop(c.Param("job")); err != nil {
		jobProblem(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"stopped": []string{c.Param("job")}})
}

func (s *Server) unitStopAll(c *gin.Context) {
	if s.noJobs(c) {
		return
	}
	exp := c.Query("experiment")
	stopped := s.cfg.Jobs.StopWhere(func(i jobs.Info) bool { return exp == "" || i.Experiment == exp })
	c.JSON(http.StatusOK, gin.H{"stopped": stopped})
}

// --- the leader side: dispatch to workers ---

// targets resolves {unit} ($broadcast allowed) to the active workers assigned
// to exp; on failure it has answered 404.
func (s *Server) targets(c *gin.Context, exp string) ([]fsm.Unit, bool) {
	if !s.readable(c) {
		return nil, false
	}
	name := c.Param("unit")
	var out []fsm.Unit
	for _, u := range s.fsm.Units() {
		if (name == "$broadcast" || u.Name == name) && u.Worker && u.IsActive == 1 && (exp == "" || s.fsm.ExperimentOf(u.NodeID) == exp) {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		abort(c, http.StatusNotFound, "not found, not active, or not assigned",
			fmt.Sprintf("no active worker %q assigned to experiment %q", name, exp), "check GET /api/workers/assignments; assign the unit and make it active")
		return nil, false
	}
	return out, true
}

// fanOut runs a task that sends the same request to every target's /unit_api and collects results by unit.
func (s *Server) fanOut(c *gin.Context, units []fsm.Unit, method, path string, body any) {
	name := c.Param("unit")
	index := s.fsm.AppliedIndex()
	c.JSON(http.StatusAccepted, s.tasks.run(name, func(ctx context.Context) (any, error) {
		results := map[string]any{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		var firstErr error
		for _, u := range units {
			wg.Add(1)
			go func(u fsm.Unit) {
				defer wg.Done()
				var out any
				err := s.callUnit(ctx, u.RaftAddr, method, path, body, &out, index)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					results[u.Name] = gin.H{"error": errCause(err)}
					if firstErr == nil && len(units) == 1 {
						firstErr = err
					}
					return
				}
				results[u.Name] = out
			}(u)
		}
		wg.Wait()
		return results, firstErr
	}))
}

func (s *Server) runJob(c *gin.Context) {
	var b unitRunBody
	if !decodeBodyIgnoringUnknown(c, &b) {
		return
	}
	// Bad settings are refused here, before anything is dispatched (the
	// bounds of the largest model: a unit applies its own too).
	if err := jobs.Check(c.Param("job"), b.Options, jobs.DefaultLimits()); err != nil {
		jobProblem(c, err)
		return
	}
	exp := c.Param("exp")
	units, ok := s.targets(c, exp)
	if !ok {
		return
	}
	b.Experiment = exp
	s.fanOut(c, units, http.MethodPost, "/unit_api/jobs/run/job_name/"+url.PathEscape(c.Param("job")), b)
}

func (s *Server) stopJob(c *gin.Context) {
	units, ok := s.targets(c, c.Param("exp"))
	if !ok {
		return
	}
	s.fanOut(c, units, http.MethodPost, "/unit_api/jobs/stop/job_name/"+url.PathEscape(c.Param("job")), struct{}{})
}

func (s *Server) stopExperimentJobs(c *gin.Context) {
	units, ok := s.targets(c, c.Param("exp"))
	if !ok {
		return
	}
	s.fanOut(c, units, http.MethodPost, "/unit_api/jobs/stop/all?experiment="+url.QueryEscape(c.Param("exp")), struct{}{})
}

func (s *Server) updateJob(c *gin.Context) {
	var b settingsBody
	if !decodeBody(c, &b) {
		return
	}
	if b.Settings == nil {
		abort(c, http.StatusBadRequest, "missing settings", `the body needs "settings": {SETTING: VALUE}`, `send {"settings": {"target_rpm": 500}}`)
		return
	}
	if err := jobs.Check(c.Param("job"), b.Settings, jobs.DefaultLimits()); err != nil {
		jobProblem(c, err)
		return
	}
	units, ok := s.targets(c, c.Param("exp"))
	if !ok {
		return
	}
	s.fanOut(c, units, http.MethodPatch, "/unit_api/jobs/update/job_name/"+url.PathEscape(c.Param("job")), b)
}

// runningJobs answers GET /api/workers/{unit}/jobs/running by asking the unit
// itself: jobs run on their worker, whoever leads. When the worker cannot be
// asked (gossip says it is dead, or it does not answer), the answer is its
// last report, replicated in the cluster, with every job in state "lost".
func (s *Server) runningJobs(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	name := c.Param("unit")
	var units []fsm.Unit
	for _, u := range s.fsm.Units() {
		if u.Worker && (name == "$broadcast" || u.Name == name) {
			units = append(units, u)
		}
	}
	if len(units) == 0 {
		abort(c, http.StatusNotFound, "worker not found", fmt.Sprintf("no worker named %q", name), "list workers with GET /api/workers")
		return
	}
	results := make(map[string][]jobs.Info, len(units))
	var mu sync.Mutex
	var wg sync.WaitGroup
	states := s.mem.States()
	for _, u := range units {
		wg.Add(1)
		go func(u fsm.Unit) {
			defer wg.Done()
			out, err := s.askRunning(c.Request.Context(), u, states[u.NodeID].Health)
			if err != nil {
				out = s.lostJobs(u)
			}
			mu.Lock()
			results[u.Name] = out
			mu.Unlock()
		}(u)
	}
	wg.Wait()
	if name != "$broadcast" {
		c.JSON(http.StatusOK, results[name])
		return
	}
	c.JSON(http.StatusOK, results)
}

// errUnitDead is returned by askRunning for a unit gossip says is dead or gone.
var errUnitDead = errors.New("unit is dead or has left")

// askRunning asks a worker for its running jobs, unless gossip says it is dead.
func (s *Server) askRunning(ctx context.Context, u fsm.Unit, health string) ([]jobs.Info, error) {
	if health == membership.HealthDead || health == membership.HealthLeft {
		return nil, errUnitDead
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out := []jobs.Info{}
	err := s.rpc.Do(ctx, u.RaftAddr, http.MethodGet, "/unit_api/jobs/running", nil, nil, &out)
	return out, err
}

// lostJobs is a worker's last job report, every job in state "lost".
func (s *Server) lostJobs(u fsm.Unit) []jobs.Info {
	recs := s.fsm.JobRecords(u.NodeID)
	out := make([]jobs.Info, 0, len(recs))
	for _, r := range recs {
		out = append(out, jobs.Info{Name: r.Name, Experiment: r.Experiment, State: jobs.StateLost, Settings: r.Settings, StartedAt: r.StartedAt})
	}
	return out
}

// jobDescriptors answers GET /api/jobs/descriptors: the jobs a worker runs,
// their settings and bounds (of the default model).
func (s *Server) jobDescriptors(c *gin.Context) {
	c.JSON(http.StatusOK, jobs.Catalog(jobs.DefaultLimits()))
}

// unitJobDescriptors answers GET /unit_api/jobs/descriptors: the jobs, with
// this unit's bounds and whether it can run each (its sensors are found).
func (s *Server) unitJobDescriptors(c *gin.Context) {
	if s.noJobs(c) {
		return
	}
	c.JSON(http.StatusOK, s.cfg.Jobs.Descriptors())
}

// callUnit sends a request to a unit's /unit_api (node-to-node, at its
// cluster address) with the leader's applied index.
func (s *Server) callUnit(ctx context.Context, addr, method, path string, in, out any, index uint64) error {
	return s.rpc.Do(ctx, addr, method, path, http.Header{indexHeader: {strconv.FormatUint(index, 10)}}, in, out)
}
