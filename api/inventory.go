package api

import (
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
		fail(c, err)
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
}

func toExperimentJSON(e fsm.Experiment, now time.Time) experimentJSON {
	return experimentJSON{Experiment: e.Experiment, CreatedAt: e.CreatedAt.Format(time.RFC3339Nano), Description: e.Description,
		Tags: e.Tags, MediaUsed: strOrNil(e.MediaUsed), OrganismUsed: strOrNil(e.OrganismUsed),
		DeltaHours: float64(int(now.Sub(e.CreatedAt).Hours()*100)) / 100}
}

// getExperiments answers GET /api/experiments, newest first.
func (s *Server) getExperiments(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	now := time.Now()
	out := []experimentJSON{}
	for _, e := range s.fsm.Experiments() {
		out = append(out, toExperimentJSON(e, now))
	}
	c.JSON(http.StatusOK, out)
}

// createExperimentBody is the body of POST /api/experiments. created_at,
// mediaUsed and organismUsed are accepted because scripts written for
// today's Pioreactor send them; the leader's clock sets created_at.
type createExperimentBody struct {
	Experiment   *string  `json:"experiment"`
	Description  string   `json:"description"`
	Tags         []string `json:"tags"`
	CreatedAt    *string  `json:"created_at"`
	MediaUsed    string   `json:"mediaUsed"`
	OrganismUsed string   `json:"organismUsed"`
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
	c.JSON(http.StatusCreated, toExperimentJSON(e, time.Now()))
}
