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
	"github.com/pioreactor/pio/rpc"
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
	{fsm.ErrHalted, problem{http.StatusServiceUnavailable, "the leader cannot write its readings store (is its disk full?) and is stopping", "free space on the leader's data disk; retry with the same X-Request-Id header once another node leads"}},
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
	{membership.ErrTokenRequired, problem{http.StatusBadRequest, "a join token is needed", "print it with `sudo pio token` on a member of that cluster, then `pio join HOST --token TOKEN` (or PIO_TOKEN)"}},
	{membership.ErrBadToken, problem{http.StatusBadRequest, "that is not a pio join token", "copy the whole token that `sudo pio token` prints on a member of the cluster"}},
	{membership.ErrWrongSecret, problem{http.StatusForbidden, "the cluster refused the join token", "the token is old or mistyped: print it again with `sudo pio token` on a member of the cluster"}},
	{membership.ErrOtherCluster, problem{http.StatusForbidden, "the token is of another cluster", "use the token of the cluster that node belongs to (`sudo pio token` on it), or give the address of a node of the token's cluster"}},
	{membership.ErrOpenCluster, problem{http.StatusConflict, "that cluster runs without secrets (made by an older pio)", "run `pio security enable` on a member of that cluster, then join with its token"}},
	{membership.ErrNotFresh, problem{http.StatusConflict, "this node accepts no invitation", "run `pio leave` on it first (or join it with `pio join HOST --token TOKEN --force` to discard its data)"}},
	{membership.ErrPinned, problem{http.StatusForbidden, "this node is pinned to another cluster by its join_token", "invite it from the cluster of its join_token, or change join_token in its config"}},
	{membership.ErrAlreadySecure, problem{http.StatusConflict, "this cluster has secrets already", "nothing to do: print its tokens with `sudo pio token` and `sudo pio token --api`"}},
	{membership.ErrMembersDown, problem{http.StatusConflict, "a member is down", "start it (or remove it from the cluster), then run `pio security enable` again: it goes on where it stopped"}},
	{membership.ErrRotation, problem{http.StatusServiceUnavailable, "the gossip key rotation did not finish", "the cluster works with the keys it has; bring the members named back and run `pio keys rotate` again"}},
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
	e := Explain(err)
	if errors.Is(err, cluster.ErrNotLeader) {
		// Not applied: a forwarding follower may retry it with the new leader.
		c.Header(rpc.NotLeaderHeader, "1")
	}
	abort(c, e.Status, e.Message, e.Cause, e.Remediation)
}

// Explain turns an error of the packages below the API into the answer a
// client gets: its status, what went wrong, why and what to do. Node-to-node
// calls answer with it too, so an error keeps its meaning across a hop.
func Explain(err error) client.Error {
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status != 0 {
		return *ce
	}
	var re *rpc.Error
	if errors.As(err, &re) && re.Status != 0 {
		return client.Error{Status: re.Status, Message: re.Message, Cause: re.Cause, Remediation: re.Remediation}
	}
	// Raft reports a full disk as text ("unable to store logs ... no space left on device").
	if errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
		return client.Error{Status: http.StatusInsufficientStorage, Message: "the node's disk is full", Cause: err.Error(),
			Remediation: "free space on the leader's data disk (SD card): remove old files, or move --data-dir to a bigger disk; nothing was written"}
	}
	for _, p := range problems {
		if errors.Is(err, p.err) {
			return client.Error{Status: p.p.status, Message: p.p.message, Cause: err.Error(), Remediation: p.p.remediation}
		}
	}
	return client.Error{Status: http.StatusInternalServerError, Message: "internal error", Cause: err.Error(),
		Remediation: "retry; if it persists, look at this node's log (journalctl -u pio)"}
}
