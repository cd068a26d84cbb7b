package api

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/fsm"
)

// apply proposes a command with the request's ID and answers the error if it
// fails. A request ID that breaks the rule is refused here too (400), before
// anything is proposed: leaderOrForward checks it first, this is the second line.
func (s *Server) apply(c *gin.Context, t fsm.CommandType, payload any) bool {
	return s.applyWith(c, t, payload, fail)
}

// applyWith is apply with problem answering the command's error.
func (s *Server) applyWith(c *gin.Context, t fsm.CommandType, payload any, problem func(*gin.Context, error)) bool {
	if !checkRequestID(c) {
		return false
	}
	rid := c.GetHeader(client.RequestIDHeader)
	if rid == "" {
		rid = uuid.NewString()
	}
	cmd, err := fsm.NewCommand(t, rid, time.Now(), payload)
	if err != nil {
		fail(c, err)
		return false
	}
	res, err := s.node.Apply(cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		problem(c, err)
		return false
	}
	return true
}

type unitJSON struct {
	Unit string `json:"pioreactor_unit"`
}

// getUnits answers GET /api/units: every node, worker or not.
func (s *Server) getUnits(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	out := []unitJSON{}
	for _, u := range s.fsm.Units() {
		out = append(out, unitJSON{u.Name})
	}
	c.JSON(http.StatusOK, out)
}

// workerJSON is a worker as Pioreactor's /api/workers shows it, plus our fields.
type workerJSON struct {
	Unit         string  `json:"pioreactor_unit"`
	AddedAt      string  `json:"added_at"`
	IsActive     int     `json:"is_active"`
	ModelName    *string `json:"model_name"`
	ModelVersion *string `json:"model_version"`
	IPv4         string  `json:"ipv4_address"`
	NodeID       string  `json:"node_id"`
	Health       string  `json:"health"`
	LastSeen     *string `json:"last_seen"`
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// getWorkers answers GET /api/workers.
func (s *Server) getWorkers(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	health := map[string]client.Member{}
	for _, m := range s.clusterInfo().Members {
		health[m.NodeID] = m
	}
	out := []workerJSON{}
	for _, u := range s.fsm.Units() {
		if !u.Worker {
			continue
		}
		host, _, _ := net.SplitHostPort(u.HTTPAddr)
		m := health[u.NodeID]
		out = append(out, workerJSON{Unit: u.Name, AddedAt: u.AddedAt.Format(time.RFC3339Nano), IsActive: u.IsActive,
			ModelName: strOrNil(u.ModelName), ModelVersion: strOrNil(u.ModelVersion), IPv4: host,
			NodeID: u.NodeID, Health: m.Health, LastSeen: m.LastSeen})
	}
	c.JSON(http.StatusOK, out)
}

// experimentJSON is an experiment as Pioreactor's /api/experiments shows it.
type experimentJSON struct {
	Experiment   string   `json:"experiment"`
	CreatedAt    string   `json:"created_at"`
	Description  string   `json:"description"`
	Tags         []string `json:"tags"`
	MediaUsed    *string  `json:"media_used"`
	OrganismUsed *string  `json:"organism_used"`
	DeltaHours   float64  `json:"delta_hours"`
	WorkerCount  int      `json:"worker_count"`
}

func toExperimentJSON(e fsm.Experiment, now time.Time, workers int) experimentJSON {
	return experimentJSON{Experiment: e.Experiment, CreatedAt: e.CreatedAt.Format(time.RFC3339Nano), Description: e.Description,
		Tags: e.Tags, MediaUsed: strOrNil(e.MediaUsed), OrganismUsed: strOrNil(e.OrganismUsed),
		DeltaHours: float64(int(now.Sub(e.CreatedAt).Hours()*100)) / 100, WorkerCount: workers}
}

// workerCounts counts the units assigned to each experiment (Pioreactor's worker_count).
func (s *Server) workerCounts() map[string]int {
	count := map[string]int{}
	for _, a := range s.fsm.Assignments() {
		count[a.Experiment]++
	}
	return count
}

// experimentJSON is the answer about one experiment.
func (s *Server) experimentJSON(e fsm.Experiment) experimentJSON {
	return toExperimentJSON(e, time.Now(), s.workerCounts()[e.Experiment])
}

// getExperiments answers GET /api/experiments, newest first.
func (s *Server) getExperiments(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	now, count := time.Now(), s.workerCounts()
	out := []experimentJSON{}
	for _, e := range s.fsm.Experiments() {
		out = append(out, toExperimentJSON(e, now, count[e.Experiment]))
	}
	c.JSON(http.StatusOK, out)
}

// latestExperiment answers GET /api/experiments/latest: the experiment created
// last, or null when there is none (as Pioreactor answers).
func (s *Server) latestExperiment(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	all := s.fsm.Experiments() // newest first
	if len(all) == 0 {
		c.JSON(http.StatusOK, nil)
		return
	}
	c.JSON(http.StatusOK, s.experimentJSON(all[0]))
}

// activeExperiments answers GET /api/experiments/active: the experiments, newest
// first, that have at least one active worker assigned.
func (s *Server) activeExperiments(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	active := map[string]int{}
	for _, u := range s.fsm.Units() {
		if e := s.fsm.ExperimentOf(u.NodeID); e != "" && u.IsActive == 1 {
			active[e]++
		}
	}
	now, count := time.Now(), s.workerCounts()
	out := []experimentJSON{}
	for _, e := range s.fsm.Experiments() {
		if active[e.Experiment] > 0 {
			out = append(out, toExperimentJSON(e, now, count[e.Experiment]))
		}
	}
	c.JSON(http.StatusOK, out)
}

// createExperimentBody is the body of POST /api/experiments. The decoder
// stays strict (unknown fields are refused); the fields below created_at are
// this route's allowance for what Pioreactor's UI and scripts send: they are
// checked for their types and sizes, then ignored, since the leader's clock
// sets created_at and delta_hours and worker_count are derived.
type createExperimentBody struct {
	Experiment   *string  `json:"experiment"`
	Description  string   `json:"description"`
	Tags         []string `json:"tags"`
	MediaUsed    string   `json:"mediaUsed"`
	OrganismUsed string   `json:"organismUsed"`
	CreatedAt    *string  `json:"created_at"`
	DeltaHours   *float64 `json:"delta_hours"`
	WorkerCount  *int     `json:"worker_count"`
}

// maxCreatedAtLen is the longest created_at POST /api/experiments accepts (and ignores).
const maxCreatedAtLen = 64

// checkIgnoredExperimentFields answers 400 and returns false when the fields
// that POST /api/experiments accepts and ignores are out of range.
func checkIgnoredExperimentFields(c *gin.Context, b createExperimentBody) bool {
	switch {
	case b.CreatedAt != nil && len(*b.CreatedAt) > maxCreatedAtLen:
		badField(c, "invalid created_at", fmt.Sprintf("created_at is %d bytes long; at most %d are allowed", len(*b.CreatedAt), maxCreatedAtLen))
	case b.WorkerCount != nil && *b.WorkerCount < 0:
		abort(c, http.StatusBadRequest, "invalid worker_count", fmt.Sprintf("worker_count is %d; it must be 0 or more", *b.WorkerCount), "send a count of workers, or leave worker_count out (it is derived from the assignments)")
	case b.DeltaHours != nil && *b.DeltaHours < 0:
		abort(c, http.StatusBadRequest, "invalid delta_hours", fmt.Sprintf("delta_hours is %g; it must be 0 or more", *b.DeltaHours), "leave delta_hours out: it is derived from created_at")
	default:
		return true
	}
	return false
}

// createExperiment answers POST /api/experiments: 201, or 409 if it exists.
func (s *Server) createExperiment(c *gin.Context) {
	var b createExperimentBody
	if !decodeBody(c, &b) {
		return
	}
	if b.Experiment == nil {
		abort(c, http.StatusBadRequest, "missing experiment name", `the body needs "experiment": "NAME"`, `send {"experiment": "NAME", "description": "..."}`)
		return
	}
	if why := fsm.ValidExperimentName(*b.Experiment); why != "" {
		abort(c, http.StatusBadRequest, "invalid experiment name", why, "choose another name")
		return
	}
	if why := fsm.ReservedExperimentName(*b.Experiment); why != "" {
		abort(c, http.StatusBadRequest, "reserved experiment name", why, "choose another name, e.g. add a date or a number to it")
		return
	}
	if !checkIgnoredExperimentFields(c, b) {
		return
	}
	if !checkExperimentText(c, &b.Description, &b.Tags) {
		return
	}
	if why := fsm.ValidMaterials(b.MediaUsed, b.OrganismUsed); why != "" {
		badField(c, "media or organism too long", why)
		return
	}
	if !s.apply(c, fsm.CmdCreateExperiment, fsm.CreateExperiment{Experiment: *b.Experiment, Description: b.Description, Tags: b.Tags,
		MediaUsed: b.MediaUsed, OrganismUsed: b.OrganismUsed}) {
		return
	}
	e, _ := s.fsm.Experiment(*b.Experiment)
	c.JSON(http.StatusCreated, s.experimentJSON(e))
}
