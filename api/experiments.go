package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/fsm"
)

// lookupExperiment finds the experiment named in the path; on failure it has answered 404.
func (s *Server) lookupExperiment(c *gin.Context) (fsm.Experiment, bool) {
	if !s.readable(c) {
		return fsm.Experiment{}, false
	}
	name := c.Param("exp")
	e, ok := s.fsm.Experiment(name)
	if !ok {
		abort(c, http.StatusNotFound, "experiment not found", fmt.Sprintf("no experiment named %q", name), "list experiments with GET /api/experiments (or `pio experiments list`)")
		return fsm.Experiment{}, false
	}
	return e, true
}

// getExperiment answers GET /api/experiments/{exp}.
func (s *Server) getExperiment(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	if e, ok := s.lookupExperiment(c); ok {
		c.JSON(http.StatusOK, s.experimentJSON(e))
	}
}

type patchExperimentBody struct {
	Description nullableString `json:"description"`
	Tags        *[]string      `json:"tags"`
}

// nullableString is a string field that may be sent as null, which
// Pioreactor takes as "" (a description); Set says whether it was sent.
type nullableString struct {
	Set   bool
	Value string
}

// UnmarshalJSON takes a JSON string or null.
func (n *nullableString) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Value = ""
		return nil
	}
	return json.Unmarshal(b, &n.Value)
}

// ptr is the value to change, or nil when the field was not sent.
func (n nullableString) ptr() *string {
	if !n.Set {
		return nil
	}
	v := n.Value
	return &v
}

// expParam is the experiment named in the path of a write. Writes do not look
// it up first: the command goes through the log and the state machine decides,
// so a retried request (same X-Request-Id) is answered from its first
// application, never from a state it changed itself.
func expParam(c *gin.Context) fsm.Experiment { return fsm.Experiment{Experiment: c.Param("exp")} }

// unitParam validates a unit name of a write; on failure it has answered 400.
func unitParam(c *gin.Context, name string) (string, bool) {
	if why := fsm.ValidUnitName(name); why != "" {
		abort(c, http.StatusBadRequest, "invalid unit name", why, "use the unit's name as listed by GET /api/units")
		return "", false
	}
	return name, true
}

// checkExperimentText answers 400 and returns false when an experiment's
// description or tags (either may be nil) are over their limits.
func checkExperimentText(c *gin.Context, description *string, tags *[]string) bool {
	if description != nil {
		if why := fsm.ValidDescription(*description); why != "" {
			badField(c, "description too long", why)
			return false
		}
	}
	if tags != nil {
		if why := fsm.ValidTags(*tags); why != "" {
			badField(c, "invalid tags", why)
			return false
		}
	}
	return true
}

// patchExperiment answers PATCH /api/experiments/{exp}: description and tags.
func (s *Server) patchExperiment(c *gin.Context) {
	e := expParam(c)
	var b patchExperimentBody
	if !decodeBody(c, &b) {
		return
	}
	description := b.Description.ptr()
	if description == nil && b.Tags == nil {
		abort(c, http.StatusBadRequest, "missing description or tags", `the body needs "description" or "tags" (or both)`, `send {"description": "TEXT"} or {"tags": ["TAG"]}`)
		return
	}
	if !checkExperimentText(c, description, b.Tags) {
		return
	}
	if !s.apply(c, fsm.CmdUpdateExperiment, fsm.UpdateExperiment{Experiment: e.Experiment, Description: description, Tags: b.Tags}) {
		return
	}
	e, _ = s.fsm.Experiment(e.Experiment)
	c.JSON(http.StatusOK, s.experimentJSON(e))
}

// deleteExperiment answers DELETE /api/experiments/{exp}; its assignments end.
// The deletion is applied before the answer, which is Pioreactor's (202 and
// a task, done already, whose result says what was deleted).
func (s *Server) deleteExperiment(c *gin.Context) {
	e := expParam(c)
	if !s.apply(c, fsm.CmdDeleteExperiment, fsm.ExperimentRef{Experiment: e.Experiment}) {
		return
	}
	s.doneTask(c, gin.H{"experiment": e.Experiment, "deleted": true})
}

// doneTask answers 202 with a task whose result is res: Pioreactor answers
// so for the writes it leaves to a task, and its UI polls the task.
func (s *Server) doneTask(c *gin.Context, res any) {
	c.JSON(http.StatusAccepted, s.tasks.run(s.cfg.Name, func(context.Context) (any, error) { return res, nil }))
}

// experimentWorkers answers GET /api/experiments/{exp}/workers: its assigned
// workers ([] for an experiment that does not exist, as Pioreactor).
func (s *Server) experimentWorkers(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	exp := c.Param("exp")
	states := s.mem.States()
	out := []workerJSON{}
	for _, u := range s.fsm.Units() {
		if s.fsm.ExperimentOf(u.NodeID) == exp {
			out = append(out, s.worker(u, states))
		}
	}
	c.JSON(http.StatusOK, out)
}

type unitBody struct {
	Unit *string `json:"pioreactor_unit"`
}

// assignWorker answers PUT /api/experiments/{exp}/workers {"pioreactor_unit"}:
// the unit moves into the experiment (out of any other).
func (s *Server) assignWorker(c *gin.Context) {
	e := expParam(c)
	var b unitBody
	if !decodeBody(c, &b) {
		return
	}
	if b.Unit == nil {
		abort(c, http.StatusBadRequest, "missing pioreactor_unit", `the body needs "pioreactor_unit": "NAME"`, `send {"pioreactor_unit": "worker2"}`)
		return
	}
	name, ok := unitParam(c, *b.Unit)
	if !ok {
		return
	}
	if !s.apply(c, fsm.CmdAssign, fsm.Assign{Unit: name, Experiment: e.Experiment}) {
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "success", "pioreactor_unit": name, "experiment": e.Experiment})
}

// unassignWorker answers DELETE /api/experiments/{exp}/workers/{unit}; 404 if not assigned there.
func (s *Server) unassignWorker(c *gin.Context) {
	e := expParam(c)
	name, ok := unitParam(c, c.Param("unit"))
	if !ok {
		return
	}
	if !s.apply(c, fsm.CmdUnassign, fsm.Assign{Unit: name, Experiment: e.Experiment}) {
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "success", "pioreactor_unit": name, "experiment": e.Experiment, "unassigned": true})
}

// unassignAll answers DELETE /api/experiments/{exp}/workers, applied before
// the answer, Pioreactor's 202 and task.
func (s *Server) unassignAll(c *gin.Context) {
	e := expParam(c)
	if !s.apply(c, fsm.CmdUnassignAll, fsm.ExperimentRef{Experiment: e.Experiment}) {
		return
	}
	s.doneTask(c, gin.H{"experiment": e.Experiment, "unassigned": true})
}

// assignmentCount answers GET /api/experiments/assignment_count: the
// experiments that have workers (as Pioreactor, none with 0).
func (s *Server) assignmentCount(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	count := map[string]int{}
	for _, a := range s.fsm.Assignments() {
		count[a.Experiment]++
	}
	type row struct {
		Experiment  string `json:"experiment"`
		WorkerCount int    `json:"worker_count"`
	}
	out := []row{}
	for _, e := range s.fsm.Experiments() {
		if count[e.Experiment] > 0 {
			out = append(out, row{e.Experiment, count[e.Experiment]})
		}
	}
	c.JSON(http.StatusOK, out)
}

// historicalAssignments answers GET /api/experiments/{exp}/historical_worker_assignments
// ([] for an experiment that does not exist, as Pioreactor).
func (s *Server) historicalAssignments(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	e := expParam(c)
	type row struct {
		Unit       string `json:"pioreactor_unit"`
		Experiment string `json:"experiment"`
		Current    int    `json:"is_currently_assigned_to_experiment"`
	}
	seen := map[string]bool{}
	out := []row{}
	for _, h := range s.fsm.History() {
		if h.Experiment != e.Experiment || seen[h.NodeID+h.Unit] {
			continue
		}
		seen[h.NodeID+h.Unit] = true
		cur := 0
		if u, ok := s.fsm.UnitByID(h.NodeID); ok && u.Name == h.Unit && s.fsm.ExperimentOf(h.NodeID) == e.Experiment {
			cur = 1
		}
		out = append(out, row{h.Unit, e.Experiment, cur})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Unit < out[j].Unit })
	c.JSON(http.StatusOK, out)
}

type unitLabelBody struct {
	Unit  *string `json:"unit"`
	Label *string `json:"label"`
}

// getUnitLabels answers GET /api/experiments/{exp}/unit_labels: {unit: label}
// ({} for an experiment that does not exist, as Pioreactor).
func (s *Server) getUnitLabels(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	c.JSON(http.StatusOK, s.fsm.Labels(c.Param("exp")))
}

// putUnitLabel answers PUT (or PATCH) /api/experiments/{exp}/unit_labels
// {"unit", "label"}, 201 as Pioreactor; an empty label clears it.
func (s *Server) putUnitLabel(c *gin.Context) {
	e := expParam(c)
	var b unitLabelBody
	if !decodeBody(c, &b) {
		return
	}
	if b.Unit == nil || b.Label == nil {
		abort(c, http.StatusBadRequest, "missing unit or label", `the body needs "unit": "NAME" and "label": "LABEL" ("" clears it)`, `send {"unit": "worker2", "label": "control"}`)
		return
	}
	if why := fsm.ValidLabel(*b.Label); why != "" {
		badField(c, "label too long", why)
		return
	}
	name, ok := unitParam(c, *b.Unit)
	if !ok {
		return
	}
	if !s.apply(c, fsm.CmdSetUnitLabel, fsm.SetUnitLabel{Experiment: e.Experiment, Unit: name, Label: *b.Label}) {
		return
	}
	c.JSON(http.StatusCreated, gin.H{"status": "success"})
}
