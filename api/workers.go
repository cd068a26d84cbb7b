package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/membership"
)

// lookupUnit validates a unit name from the path and finds it; on failure it
// has answered (400 for a bad or unknown name, as Pioreactor does).
func (s *Server) lookupUnit(c *gin.Context, name string) (fsm.Unit, bool) {
	if !s.readable(c) {
		return fsm.Unit{}, false
	}
	if why := fsm.ValidUnitName(name); why != "" {
		abort(c, http.StatusBadRequest, "invalid unit name", why, "use the unit's name as listed by GET /api/units")
		return fsm.Unit{}, false
	}
	u, ok := s.fsm.UnitByName(name)
	if !ok {
		abort(c, http.StatusBadRequest, "unit not found", fmt.Sprintf("no unit named %q in the inventory", name), "list units with GET /api/units (or `pio workers list`)")
		return fsm.Unit{}, false
	}
	return u, true
}

// worker builds the /api/workers object of a unit.
func (s *Server) worker(u fsm.Unit, states map[string]membership.MemberState) workerJSON {
	host, _, _ := net.SplitHostPort(u.HTTPAddr)
	w := workerJSON{Unit: u.Name, AddedAt: u.AddedAt.Format(time.RFC3339Nano), IsActive: u.IsActive,
		ModelName: strOrNil(u.ModelName), ModelVersion: strOrNil(u.ModelVersion), IPv4: host, NodeID: u.NodeID, Health: "unknown"}
	if st, ok := states[u.NodeID]; ok {
		w.Health = st.Health
		if !st.LastSeen.IsZero() {
			v := st.LastSeen.UTC().Format(time.RFC3339Nano)
			w.LastSeen = &v
		}
	}
	return w
}

// getWorker answers GET /api/workers/{unit}: the worker, or 404.
func (s *Server) getWorker(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	u, ok := s.fsm.UnitByName(c.Param("unit"))
	if !ok || !u.Worker {
		abort(c, http.StatusNotFound, "worker not found", fmt.Sprintf("no worker named %q", c.Param("unit")), "list workers with GET /api/workers")
		return
	}
	c.JSON(http.StatusOK, s.worker(u, s.mem.States()))
}

type addWorkerBody struct {
	Unit         *string `json:"pioreactor_unit"`
	ModelName    string  `json:"model_name"`
	ModelVersion string  `json:"model_version"`
	Address      string  `json:"address"`
}

// addWorker answers PUT /api/workers: the leader reaches the named standalone
// node (at address, else NAME or NAME.local, port 8080), invites it into the
// cluster, and answers 201 once it is an active worker in the inventory.
func (s *Server) addWorker(c *gin.Context) {
	var b addWorkerBody
	if !decodeBody(c, &b) {
		return
	}
	if b.Unit == nil {
		abort(c, http.StatusBadRequest, "missing pioreactor_unit", `the body needs "pioreactor_unit": "NAME"`, `send {"pioreactor_unit": "worker2"} (and "address": "IP" if its name does not resolve)`)
		return
	}
	if u, ok := s.addWorkerNamed(c, *b.Unit, b.ModelName, b.ModelVersion, b.Address); ok {
		c.JSON(http.StatusCreated, s.worker(u, s.mem.States()))
	}
}

// addWorkerNamed adds the worker called name, reached at address (or by its
// name), with its model, and returns it; on failure it has answered.
func (s *Server) addWorkerNamed(c *gin.Context, name, modelName, modelVersion, address string) (fsm.Unit, bool) {
	b := addWorkerBody{Unit: &name, ModelName: modelName, ModelVersion: modelVersion, Address: address}
	if why := fsm.ValidUnitName(name); why != "" {
		abort(c, http.StatusBadRequest, "invalid unit name", why, "use the worker's hostname")
		return fsm.Unit{}, false
	}
	if why := fsm.ReservedUnitName(name); why != "" {
		abort(c, http.StatusBadRequest, "reserved unit name", why, "rename the worker (pio serve --name NEWNAME) and add it by that name")
		return fsm.Unit{}, false
	}
	if why := fsm.ValidModel(b.ModelName, b.ModelVersion); why != "" {
		badField(c, "invalid model", why)
		return fsm.Unit{}, false
	}
	if len(b.Address) > fsm.MaxAddrLen {
		badField(c, "invalid address", fmt.Sprintf("the address is %d bytes long; at most %d are allowed", len(b.Address), fsm.MaxAddrLen))
		return fsm.Unit{}, false
	}
	if !s.readable(c) {
		return fsm.Unit{}, false
	}
	if u, ok := s.fsm.UnitByName(name); ok {
		abort(c, http.StatusConflict, "already in the inventory", fmt.Sprintf("%s is already a member (node %s at %s)", name, u.NodeID, u.HTTPAddr), "nothing to do; remove it first to add it again")
		return fsm.Unit{}, false
	}
	candidates := []string{name, name + ".local"}
	if b.Address != "" {
		candidates = []string{b.Address}
	}
	ctx := c.Request.Context()
	var tried []string
	var target *client.Client
	for _, addr := range candidates {
		pc, err := client.New(addr, 90*time.Second)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (%v)", addr, err))
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		h, err := pc.Health(hctx)
		cancel()
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (%v)", pc.Base, errCause(err)))
			continue
		}
		if h.Name != name {
			tried = append(tried, fmt.Sprintf("%s (answers as %q, not %q)", pc.Base, h.Name, name))
			continue
		}
		target = pc
		break
	}
	if target == nil {
		abort(c, http.StatusNotFound, "worker not found", "could not reach "+name+": tried "+strings.Join(tried, "; "),
			"check that the worker is powered on, runs `pio serve` and is on this network; give its IP with \"address\" (pio workers add NAME --address IP)")
		return fsm.Unit{}, false
	}
	token, err := s.mem.Invite(name)
	if err != nil {
		fail(c, err)
		return fsm.Unit{}, false
	}
	var jr client.JoinResponse
	if err := target.Do(ctx, http.MethodPost, "/unit_api/invitation", invitationBody{Address: s.cfg.HTTPAddr, Token: token}, &jr); err != nil {
		fail(c, err)
		return fsm.Unit{}, false
	}
	u, err := s.waitAlive(ctx, name, 30*time.Second)
	if err != nil {
		abort(c, http.StatusGatewayTimeout, "worker joined but is not healthy yet", name+" did not show up alive in gossip within 30 s", "look at `pio status`; check that UDP and TCP on the gossip port (8301) are open between the Pis")
		return fsm.Unit{}, false
	}
	if b.ModelName != "" || b.ModelVersion != "" {
		if !s.apply(c, fsm.CmdRegisterUnit, fsm.RegisterUnit{NodeID: u.NodeID, Name: u.Name, Worker: u.Worker, RaftAddr: u.RaftAddr,
			HTTPAddr: u.HTTPAddr, GossipAddr: u.GossipAddr, ModelName: b.ModelName, ModelVersion: b.ModelVersion}) {
			return fsm.Unit{}, false
		}
		u, _ = s.fsm.UnitByName(name)
	}
	return u, true
}

// waitAlive waits until the unit called name is in the inventory and alive
// in gossip, woken by what the state machine applies and what gossip reports.
func (s *Server) waitAlive(ctx context.Context, name string, within time.Duration) (fsm.Unit, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	defer s.fsm.Subscribe(func(fsm.Change) { poke() })()
	defer s.mem.OnChange(poke)()
	for {
		if u, ok := s.fsm.UnitByName(name); ok && s.mem.States()[u.NodeID].Health == membership.HealthAlive {
			return u, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fsm.Unit{}, ctx.Err()
		}
	}
}

// errCause is the cause of an error for a person: a client error's cause, else the error.
func errCause(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) && ce.Cause != "" {
		return ce.Cause
	}
	return err.Error()
}

// removeWorker answers DELETE /api/workers/{unit}: out of the inventory and
// the cluster; the unit goes back to standalone. Refused if it would leave no
// quorum; 404 for a unit not in the inventory, as Pioreactor.
func (s *Server) removeWorker(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	name := c.Param("unit")
	if why := fsm.ValidUnitName(name); why != "" {
		abort(c, http.StatusBadRequest, "invalid unit name", why, "use the unit's name as listed by GET /api/units")
		return
	}
	u, ok := s.fsm.UnitByName(name)
	if !ok {
		abort(c, http.StatusNotFound, "worker not found", fmt.Sprintf("no unit named %q in the inventory", name), "list units with GET /api/units (or `pio workers list`)")
		return
	}
	if u.NodeID == s.cfg.NodeID {
		// The leader itself: it hands over the leadership, then leaves.
		go func() {
			if err := s.mem.Leave(context.Background()); err != nil {
				s.log.Error("removing the leader: leave failed", "error", err)
			}
		}()
		c.JSON(http.StatusAccepted, gin.H{"status": "success", "unit": u.Name, "detail": "leaving: the leadership moves to another node first"})
		return
	}
	if why := s.mem.RemovalBreaksQuorum(u.NodeID); why != "" {
		abort(c, http.StatusConflict, "removing this unit would stop the cluster", why, "bring the dead voters back (or wait until they are replaced), then remove it")
		return
	}
	if err := s.mem.RemoveMember(c.Request.Context(), u.NodeID); err != nil {
		fail(c, err)
		return
	}
	// Tell the unit; it checks with the cluster and goes back to standalone.
	go func(addr string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.rpc.Do(ctx, addr, http.MethodPost, "/unit_api/removed", nil, struct{}{}, nil)
	}(u.RaftAddr)
	c.JSON(http.StatusAccepted, gin.H{"status": "success", "unit": u.Name, "detail": "removed"})
}

type isActiveBody struct {
	IsActive *int `json:"is_active"`
}

// setActive answers PUT /api/workers/{unit}/is_active {"is_active": 0|1}.
func (s *Server) setActive(c *gin.Context) {
	name, ok := unitParam(c, c.Param("unit"))
	if !ok {
		return
	}
	var b isActiveBody
	if !decodeBody(c, &b) {
		return
	}
	if b.IsActive == nil || (*b.IsActive != 0 && *b.IsActive != 1) {
		abort(c, http.StatusBadRequest, "bad is_active", `"is_active" must be the integer 0 or 1`, `send {"is_active": 0} or {"is_active": 1}`)
		return
	}
	if !s.apply(c, fsm.CmdSetActive, fsm.SetActive{Unit: name, IsActive: *b.IsActive}) {
		return
	}
	u, _ := s.fsm.UnitByName(name)
	c.JSON(http.StatusOK, struct {
		Status string `json:"status"`
		workerJSON
	}{"success", s.worker(u, s.mem.States())})
}

// assignments answers GET /api/workers/assignments.
func (s *Server) assignments(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	type row struct {
		Unit       string  `json:"pioreactor_unit"`
		Experiment *string `json:"experiment"`
		IsActive   int     `json:"is_active"`
	}
	out := []row{}
	for _, u := range s.fsm.Units() {
		if !u.Worker {
			continue
		}
		r := row{Unit: u.Name, IsActive: u.IsActive}
		if e := s.fsm.ExperimentOf(u.NodeID); e != "" {
			r.Experiment = &e
		}
		out = append(out, r)
	}
	c.JSON(http.StatusOK, out)
}

// workerExperiment answers GET /api/workers/{unit}/experiment; 404 if
// unassigned or not a worker in the inventory, as Pioreactor.
func (s *Server) workerExperiment(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	u, ok := s.fsm.UnitByName(c.Param("unit"))
	if !ok || !u.Worker {
		abort(c, http.StatusNotFound, "worker not found", fmt.Sprintf("no worker named %s", quoteCut(c.Param("unit"))), "list workers with GET /api/workers")
		return
	}
	e := s.fsm.ExperimentOf(u.NodeID)
	if e == "" {
		abort(c, http.StatusNotFound, "not assigned", u.Name+" is not assigned to an experiment", "assign it with PUT /api/experiments/{experiment}/workers")
		return
	}
	c.JSON(http.StatusOK, gin.H{"pioreactor_unit": u.Name, "is_active": u.IsActive, "experiment": e,
		"model_name": strOrNil(u.ModelName), "model_version": strOrNil(u.ModelVersion)})
}

// dispatch runs a task that calls the unit's /unit_api path; 202 with the task.
func (s *Server) dispatch(c *gin.Context, u fsm.Unit, method, path string) {
	addr := u.RaftAddr
	c.JSON(http.StatusAccepted, s.tasks.run(u.Name, func(ctx context.Context) (any, error) {
		var out any
		if err := s.rpc.Do(ctx, addr, method, path, nil, struct{}{}, &out); err != nil {
			return nil, err
		}
		return out, nil
	}))
}

// blink answers POST /api/workers/{unit}/blink: 202; the unit's LED blinks.
func (s *Server) blink(c *gin.Context) {
	u, ok := s.lookupUnit(c, c.Param("unit"))
	if !ok {
		return
	}
	s.dispatch(c, u, http.MethodPost, "/unit_api/blink")
}

// reboot answers POST /api/units/{unit}/system/reboot: 202; the unit reboots.
func (s *Server) reboot(c *gin.Context) {
	u, ok := s.lookupUnit(c, c.Param("unit"))
	if !ok {
		return
	}
	s.dispatch(c, u, http.MethodPost, "/unit_api/system/reboot")
}
