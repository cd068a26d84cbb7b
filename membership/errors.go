package membership

import (
	"errors"

	"github.com/pioreactor/pio/trust"
)

// ErrUnreachable is returned when the node named in a join cannot be reached.
var ErrUnreachable = errors.New("cannot reach that node")

// ErrJoinSelf is returned when a node is asked to join itself.
var ErrJoinSelf = errors.New("a node cannot join itself")

// ErrAlreadyMember is returned when a node that belongs to a cluster of several
// nodes is asked to join another one.
var ErrAlreadyMember = errors.New("this node already belongs to a cluster")

// ErrNotEmpty is returned when a standalone node holding data is asked to join
// a cluster without force: joining would discard that data.
var ErrNotEmpty = errors.New("this standalone node holds data that joining would discard")

// ErrStandalone is returned when a node that is alone is asked to leave.
var ErrStandalone = errors.New("this node is not in a cluster with other nodes")

// ErrNameTaken is returned when a node would join under a name another node holds.
var ErrNameTaken = errors.New("that name is held by another node")

// ErrNoLeader is returned when no leader could be found in time.
var ErrNoLeader = errors.New("no leader")

// ErrRemoveSelf is returned when the leader is asked to remove itself; it must
// transfer leadership first (Leave does).
var ErrRemoveSelf = errors.New("the leader cannot remove itself")

// ErrQuorum is returned when removing a node would leave the cluster without a
// quorum of alive voters: the change itself could not commit, and the leader
// would step down.
var ErrQuorum = errors.New("removing this node would leave no quorum")

// ErrTokenRequired is returned when a node would join a cluster with secrets without its join token.
var ErrTokenRequired = errors.New("joining this cluster needs its join token")

// ErrBadToken is returned for a join token that is not of the form `pio token` prints.
var ErrBadToken = trust.ErrBadToken

// ErrWrongSecret is returned when the cluster refused the join token's secret.
var ErrWrongSecret = errors.New("the cluster refused the join token: its secret is wrong")

// ErrOtherCluster is returned when the node given belongs to another cluster than the token's.
var ErrOtherCluster = trust.ErrOtherCluster

// ErrOpenCluster is returned when a node with secrets would join a cluster without any.
var ErrOpenCluster = errors.New("that cluster runs without secrets")

// ErrNotFresh is returned when a node that is not fresh (it belongs to a
// cluster of several nodes, or holds data) is invited into a cluster.
var ErrNotFresh = errors.New("this node is not fresh: it accepts no invitation")

// ErrPinned is returned when a node pinned to one cluster (join_token) is
// invited into another.
var ErrPinned = errors.New("this node may only join the cluster of its configured join token")
