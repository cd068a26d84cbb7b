package membership

import "errors"

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
