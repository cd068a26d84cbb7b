package trust

import "errors"

// ErrNoSecrets is returned by Load when the data dir holds no secrets: the
// node was made by a pio without secrets (an open cluster), or never started.
var ErrNoSecrets = errors.New("this node holds no cluster secrets")

// ErrBadToken is returned when a join token is not of the form `pio token` prints.
var ErrBadToken = errors.New("not a pio join token")

// ErrDamaged is returned when the secrets on disk cannot be read back.
var ErrDamaged = errors.New("the cluster secrets in the data dir are damaged")

// ErrOtherCluster is returned when a node's CA is not the one a join token pins.
var ErrOtherCluster = errors.New("the node belongs to another cluster than the token")
