package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/jobs"
)

// --- capabilities ---

// capabilityOption is a `pio run` option of a capability, as Pioreactor lists it.
type capabilityOption struct {
	Name     string `json:"name"`
	LongFlag string `json:"long_flag"`
	Help     string `json:"help"`
	Required bool   `json:"required"`
	Multiple bool   `json:"multiple"`
	Default  any    `json:"default"`
	Type     string `json:"type"`
}

// publishedSetting is a setting a job publishes: its type and whether it can be set.
type publishedSetting struct {
	Datatype string `json:"datatype"`
	Settable bool   `json:"settable"`
}

// capability is one job (one per automation of an automation job), as
// Pioreactor's GET /unit_api/capabilities lists it.
type capability struct {
	JobName           string                      `json:"job_name"`
	AutomationName    string                      `json:"automation_name,omitempty"`
	Help              string                      `json:"help"`
	Arguments         []any                       `json:"arguments"`
	Options           []capabilityOption          `json:"options"`
	PublishedSettings map[string]publishedSetting `json:"published_settings"`
	CLIExample        string                      `json:"cli_example"`
}

// datatypeOf names a setting's type as Pioreactor's published settings do.
func datatypeOf(v any) string {
	switch v.(type) {
	case float64, float32, int, int64:
		return "float"
	case bool:
		return "boolean"
	}
	return "string"
}

// capabilities lists the jobs of the catalog as Pioreactor's capabilities:
// their settable settings as options, and every published setting ($state too).
func capabilities(lim jobs.Limits) []capability {
	var out []capability
	for _, d := range jobs.Catalog(lim) {
		published := map[string]publishedSetting{"$state": {Datatype: "string", Settable: true}}
		var opts []capabilityOption
		names := make([]string, 0, len(d.Settings))
		for k := range d.Settings {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if k == "automation_name" {
				continue
			}
			published[k] = publishedSetting{Datatype: datatypeOf(d.Settings[k]), Settable: true}
			opts = append(opts, capabilityOption{Name: k, LongFlag: strings.ReplaceAll(k, "_", "-"), Default: d.Settings[k], Type: datatypeOf(d.Settings[k])})
		}
		for _, k := range d.Measurements {
			published[k] = publishedSetting{Datatype: "float", Settable: false}
		}
		if opts == nil {
			opts = []capabilityOption{}
		}
		automations := d.Choices["automation_name"]
		if len(automations) == 0 {
			out = append(out, capability{JobName: d.Name, Arguments: []any{}, Options: opts, PublishedSettings: published,
				CLIExample: "pio run " + d.Name + " [OPTIONS]"})
			continue
		}
		for _, a := range automations {
			out = append(out, capability{JobName: d.Name, AutomationName: a, Arguments: []any{}, Options: opts, PublishedSettings: published,
				CLIExample: "pio run " + d.Name + " --automation-name " + a + " [OPTIONS]"})
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].JobName != out[b].JobName {
			return out[a].JobName < out[b].JobName
		}
		return out[a].AutomationName < out[b].AutomationName
	})
	return out
}

// unitCapabilities answers GET /unit_api/capabilities: the jobs this node's
// software runs, with this unit's bounds.
func (s *Server) unitCapabilities(c *gin.Context) {
	lim := jobs.DefaultLimits()
	if s.cfg.Jobs != nil {
		lim = s.cfg.Jobs.Limits()
	}
	c.JSON(http.StatusOK, capabilities(lim))
}

// unitsOrBroadcast resolves the {unit} of a route that fans out to units:
// one unit of the inventory, or every unit for $broadcast. On failure it has
// answered (400 for an unknown unit).
func (s *Server) unitsOrBroadcast(c *gin.Context) ([]fsm.Unit, bool) {
	name := c.Param("unit")
	if name != fsm.Broadcast {
		u, ok := s.lookupUnit(c, name)
		return []fsm.Unit{u}, ok
	}
	if !s.readable(c) {
		return nil, false
	}
	return s.fsm.Units(), true
}

// getCapabilities answers GET /api/units/{unit}/capabilities (and
// /api/workers/{unit}/capabilities): a 202 task, its result {unit: [capability...]}.
func (s *Server) getCapabilities(c *gin.Context) {
	if units, ok := s.unitsOrBroadcast(c); ok {
		s.fanOut(c, units, http.MethodGet, "/unit_api/capabilities", nil)
	}
}

// getVersions answers GET /api/units/{unit}/versions/app: a 202 task, its
// result {unit: {"version"}}.
func (s *Server) getVersions(c *gin.Context) {
	if units, ok := s.unitsOrBroadcast(c); ok {
		s.fanOut(c, units, http.MethodGet, "/unit_api/versions/app", nil)
	}
}

// --- this unit's jobs ---

// jobSource is where pio's jobs come from, in Pioreactor's terms: a user
// (the API, the UI, the CLI).
const jobSource = "user"

// jobRow is a job as Pioreactor's unit API lists its job metadata, with
// pio's state and settings. pio keeps no record of ended jobs: every row is
// a running job, and job_id is its start time in microseconds.
type jobRow struct {
	jobs.Info
	JobID            int64   `json:"job_id"`
	Unit             string  `json:"unit"`
	JobSource        string  `json:"job_source"`
	IsRunning        int     `json:"is_running"`
	IsLongRunningJob int     `json:"is_long_running_job"`
	EndedAt          *string `json:"ended_at"`
}

// jobRows returns this unit's running jobs that match, as jobRows, newest first.
func (s *Server) jobRows(match func(jobs.Info) bool) []jobRow {
	out := []jobRow{}
	for _, i := range s.cfg.Jobs.Running() {
		if match(i) {
			out = append(out, jobRow{Info: i, JobID: i.StartedAt.UnixMicro(), Unit: s.cfg.Name, JobSource: jobSource, IsRunning: 1})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].StartedAt.After(out[b].StartedAt) })
	return out
}

// unitJobs answers GET /unit_api/jobs: this unit's jobs, newest first.
func (s *Server) unitJobs(c *gin.Context) {
	if !s.noJobs(c) {
		c.JSON(http.StatusOK, s.jobRows(func(jobs.Info) bool { return true }))
	}
}

// unitRunningJob answers GET /unit_api/jobs/running/{job}: the running jobs of that name.
func (s *Server) unitRunningJob(c *gin.Context) {
	if !s.noJobs(c) {
		name := c.Param("job")
		c.JSON(http.StatusOK, s.jobRows(func(i jobs.Info) bool { return i.Name == name }))
	}
}

// unitRunningInExperiment answers GET /unit_api/jobs/running/experiments/{exp}.
func (s *Server) unitRunningInExperiment(c *gin.Context) {
	if !s.noJobs(c) {
		exp := c.Param("exp")
		c.JSON(http.StatusOK, s.jobRows(func(i jobs.Info) bool { return i.Experiment == exp }))
	}
}

// runningSettings returns the published settings of the running job of the
// path ($state among them); on failure it has answered 404.
func (s *Server) runningSettings(c *gin.Context) (map[string]any, bool) {
	if s.noJobs(c) {
		return nil, false
	}
	for _, i := range s.cfg.Jobs.Running() {
		if i.Name == c.Param("job") {
			out := map[string]any{jobs.StateSetting: i.State}
			for k, v := range i.Settings {
				out[k] = v
			}
			return out, true
		}
	}
	abort(c, http.StatusNotFound, "No settings found for job.", fmt.Sprintf("%s runs no job %s", s.cfg.Name, quoteCut(c.Param("job"))),
		"list running jobs with GET /unit_api/jobs/running")
	return nil, false
}

// unitJobSettings answers GET /unit_api/jobs/settings/job_name/{job}: {"settings": {k: v}}.
func (s *Server) unitJobSettings(c *gin.Context) {
	if set, ok := s.runningSettings(c); ok {
		c.JSON(http.StatusOK, gin.H{"settings": set})
	}
}

// unitJobSetting answers GET /unit_api/jobs/settings/job_name/{job}/setting/{setting}: {setting: value}.
func (s *Server) unitJobSetting(c *gin.Context) {
	set, ok := s.runningSettings(c)
	if !ok {
		return
	}
	name := c.Param("setting")
	v, ok := set[name]
	if !ok {
		abort(c, http.StatusNotFound, "Setting not found.", fmt.Sprintf("job %s has no setting %s", quoteCut(c.Param("job")), quoteCut(name)),
			"GET /unit_api/jobs/settings/job_name/"+c.Param("job")+" lists its settings")
		return
	}
	c.JSON(http.StatusOK, gin.H{name: v})
}

// stopJobsBody is the filter of POST /unit_api/jobs/stop: the jobs that match
// every field given are stopped.
type stopJobsBody struct {
	JobName    *string `json:"job_name"`
	Experiment *string `json:"experiment"`
	JobSource  *string `json:"job_source"`
	JobID      *int64  `json:"job_id"`
}

// maxFilterLen bounds the text fields of a stop filter.
const maxFilterLen = 256

// unitStopJobs answers POST /unit_api/jobs/stop {job_name?, experiment?,
// job_source?, job_id?}: stops this unit's jobs that match every field given
// (at least one), pumps first; a 202 task, its result {"stopped": [job...]}.
func (s *Server) unitStopJobs(c *gin.Context) {
	var b stopJobsBody
	if !decodeBody(c, &b) || s.stopProfileRuns(c, b) || s.noJobs(c) {
		return
	}
	given := func(p *string) bool { return p != nil && *p != "" }
	if !given(b.JobName) && !given(b.Experiment) && !given(b.JobSource) && (b.JobID == nil || *b.JobID == 0) {
		abort(c, http.StatusBadRequest, "No job filter specified", "the body names no job_name, experiment, job_source or job_id",
			`send e.g. {"job_name": "stirring"} or {"experiment": "exp1"}; POST /unit_api/jobs/stop/all stops every job`)
		return
	}
	for name, p := range map[string]*string{"job_name": b.JobName, "experiment": b.Experiment, "job_source": b.JobSource} {
		if p != nil && utf8.RuneCountInString(*p) > maxFilterLen {
			badField(c, name+" too long", fmt.Sprintf("%s is longer than %d characters", name, maxFilterLen))
			return
		}
	}
	stopped := s.cfg.Jobs.StopWhere(func(i jobs.Info) bool {
		return (!given(b.JobName) || i.Name == *b.JobName) && (!given(b.Experiment) || i.Experiment == *b.Experiment) &&
			(!given(b.JobSource) || *b.JobSource == jobSource) && (b.JobID == nil || *b.JobID == 0 || i.StartedAt.UnixMicro() == *b.JobID)
	})
	if stopped == nil {
		stopped = []string{}
	}
	c.JSON(http.StatusAccepted, s.tasks.run(s.cfg.Name, func(context.Context) (any, error) {
		return gin.H{"stopped": stopped}, nil
	}))
}

// assignedTargets resolves {unit} ($broadcast allowed) to the workers
// assigned to exp; on failure it has answered 404, as Pioreactor does.
func (s *Server) assignedTargets(c *gin.Context, exp string) ([]fsm.Unit, bool) {
	if !s.readable(c) {
		return nil, false
	}
	name := c.Param("unit")
	var out []fsm.Unit
	for _, u := range s.fsm.Units() {
		if (name == fsm.Broadcast || u.Name == name) && u.Worker && s.fsm.ExperimentOf(u.NodeID) == exp {
			out = append(out, u)
		}
	}
	if len(out) == 0 && name != fsm.Broadcast {
		abort(c, http.StatusNotFound, "not in experiment", fmt.Sprintf("%s is not in experiment %s", quoteCut(name), quoteCut(exp)),
			"check GET /api/workers/assignments")
		return nil, false
	}
	return out, true
}

// getJobSettings answers GET
// /api/workers/{unit}/jobs/settings/job_name/{job}/experiments/{exp}: a 202
// task, its result {unit: {"settings": {...}}} from each unit assigned there.
func (s *Server) getJobSettings(c *gin.Context) {
	if units, ok := s.assignedTargets(c, c.Param("exp")); ok {
		s.fanOut(c, units, http.MethodGet, "/unit_api/jobs/settings/job_name/"+url.PathEscape(c.Param("job")), nil)
	}
}

// getJobSetting answers GET
// /api/workers/{unit}/jobs/settings/job_name/{job}/setting/{setting}/experiments/{exp}:
// a 202 task, its result {unit: {setting: value}}.
func (s *Server) getJobSetting(c *gin.Context) {
	if units, ok := s.assignedTargets(c, c.Param("exp")); ok {
		s.fanOut(c, units, http.MethodGet, "/unit_api/jobs/settings/job_name/"+url.PathEscape(c.Param("job"))+"/setting/"+url.PathEscape(c.Param("setting")), nil)
	}
}

// --- shutdown and repair ---

// unitShutdown answers POST /unit_api/system/shutdown: a 202 task; the node
// powers off (`shutdown_command` on a Pi; a simulated node stops).
func (s *Server) unitShutdown(c *gin.Context) {
	s.unitPower(c, s.cfg.Shutdown, "shutdown", gin.H{"shutting_down": true})
}

// unitRepair answers POST /unit_api/system/repair: a 202 task; the node makes
// its data dir private again (directories 0700, files 0600), as at start:
// pio's counterpart of Pioreactor's repair of its files' permissions.
func (s *Server) unitRepair(c *gin.Context) {
	s.unitPower(c, s.cfg.Repair, "repair", gin.H{"repaired": true})
}

// unitPower runs fn (nil: 501) as this node's task, answering 202.
func (s *Server) unitPower(c *gin.Context, fn func() error, what string, result gin.H) {
	if fn == nil {
		abort(c, http.StatusNotImplemented, what+" not available", "this node was started without a "+what+" method", "run it on the node by hand")
		return
	}
	c.JSON(http.StatusAccepted, s.tasks.runFor(s.cfg.Name, time.Minute, func(context.Context) (any, error) {
		if err := fn(); err != nil {
			return nil, err
		}
		return result, nil
	}))
}

// shutdown answers POST /api/units/{unit}/system/shutdown: 202; the unit powers off.
func (s *Server) shutdown(c *gin.Context) {
	if u, ok := s.lookupUnit(c, c.Param("unit")); ok {
		s.dispatch(c, u, http.MethodPost, "/unit_api/system/shutdown")
	}
}

// repair answers POST /api/units/{unit}/system/repair: 202; the unit makes its data dir private again.
func (s *Server) repair(c *gin.Context) {
	if u, ok := s.lookupUnit(c, c.Param("unit")); ok {
		s.dispatch(c, u, http.MethodPost, "/unit_api/system/repair")
	}
}
