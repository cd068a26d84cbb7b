package api

import (
	"errors"
	"net/http"
	"strings"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/membership"
)

// problem is an error answer: what went wrong, the HTTP status, why, and what to do.
type problem struct {
	status      int
	message     string
	remediation string
}

// problems maps the sentinel errors of the packages below the API to answers.
var problems = []struct {
	err error
	p   problem
}{
	{cluster.ErrNotLeader, problem{http.StatusServiceUnavailable, "the leader changed while handling the request; it was not applied", "retry in a moment"}},
	{cluster.ErrOutcomeUnknown, problem{http.StatusServiceUnavailable, "the leader changed while applying the request; it may or may not have been applied", "retry with the same X-Request-Id header: a request is never applied twice"}},
	{cluster.ErrShutdown, problem{http.StatusServiceUnavailable, "this node is restarting its Raft peer", "retry in a moment"}},
	{cluster.ErrTimeout, problem{http.StatusServiceUnavailable, "the leader is overloaded and could not take the request", "retry in a moment"}},
	{fsm.ErrExperimentExists, problem{http.StatusConflict, "experiment already exists", "choose another name, or use the existing experiment"}},
	{fsm.ErrExperimentNotFound, problem{http.StatusNotFound, "experiment not found", "list experiments with GET /api/experiments (or `pio experiments list`)"}},
	{fsm.ErrUnitNotFound, problem{http.StatusBadRequest, "unit not found", "list units with GET /api/units (or `pio status`)"}},
	{fsm.ErrNameTaken, problem{http.StatusConflict, "unit name already taken", "give this node another name (--name) or remove the other node first"}},
	{membership.ErrNameTaken, problem{http.StatusConflict, "unit name already taken in that cluster", "give this node another name (--name), or remove the other node from the cluster first"}},
	{fsm.ErrInvalidName, problem{http.StatusBadRequest, "invalid name", "unit names are 1 to 63 letters, digits, '-' or '_'; experiment names 1 to 199 characters without # $ % + / \\, control characters or '..' (README, HTTP API)"}},
	{fsm.ErrBadPayload, problem{http.StatusBadRequest, "bad request", "send the fields within their limits (README, HTTP API)"}},
	{fsm.ErrNotWorker, problem{http.StatusBadRequest, "not a worker", "assign a worker (GET /api/workers)"}},
	{fsm.ErrNotAssigned, problem{http.StatusNotFound, "unit not assigned to that experiment", "see assignments with GET /api/workers/assignments"}},
	{membership.ErrUnreachable, problem{http.StatusNotFound, "cannot reach that node", "check the address and port (HOST[:PORT] of its HTTP API, default port 8080) and that `pio serve` runs there"}},
	{membership.ErrJoinSelf, problem{http.StatusBadRequest, "a node cannot join itself", "give the address of another node of the cluster to join"}},
	{membership.ErrAlreadyMember, problem{http.StatusConflict, "this node already belongs to a cluster", "run `pio leave` on this node first"}},
	{membership.ErrNotEmpty, problem{http.StatusConflict, "this node holds data of its own; joining would discard it", "copy what you need, then join with --force (`pio join HOST --force`); the discarded state is kept aside in the data dir"}},
	{membership.ErrStandalone, problem{http.StatusConflict, "this node is not in a cluster with other nodes", "nothing to leave; `pio join HOST` joins a cluster"}},
	{membership.ErrNoLeader, problem{http.StatusServiceUnavailable, "the cluster has no leader", "check that a majority of voters runs (`pio status`), then retry"}},
	{membership.ErrQuorum, problem{http.StatusConflict, "removing this node would stop the cluster", "bring the dead voters back first (or wait until they are replaced by healthy non-voters), then retry"}},
	{membership.ErrRemoveSelf, problem{http.StatusConflict, "the leader cannot remove itself", "run `pio leave` on it: it transfers leadership first"}},
}

// abort answers with a problem and stops the handler chain.
func abort(c *gin.Context, status int, message, cause, remediation string) {
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "1")
	}
	c.AbortWithStatusJSON(status, client.Error{Message: message, Status: status, Cause: cause, Remediation: remediation})
}

// fail answers for err, mapping known errors to their status and remedy.
func fail(c *gin.Context, err error) {
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status != 0 {
		abort(c, ce.Status, ce.Message, ce.Cause, ce.Remediation)
		return
	}
	// Raft reports a full disk as text ("unable to store logs ... no space left on device").
	if errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
		abort(c, http.StatusInsufficientStorage, "the node's disk is full", err.Error(),
			"free space on the leader's data disk (SD card): remove old files, or move --data-dir to a bigger disk; nothing was written")
		return
	}
	if errors.Is(err, cluster.ErrNotLeader) {
		// Not applied: a forwarding follower may retry it with the new leader.
		c.Header("X-Pio-Not-Leader", "1")
	}
	for _, p := range problems {
		if errors.Is(err, p.err) {
			abort(c, p.p.status, p.p.message, err.Error(), p.p.remediation)
			return
		}
	}
	abort(c, http.StatusInternalServerError, "internal error", err.Error(), "retry; if it persists, look at this node's log (journalctl -u pio)")
}
