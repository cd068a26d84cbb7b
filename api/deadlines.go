package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// The HTTP server that serves the API has read and write timeouts (see
// cmd/pio: slow bodies and stuck clients must not hold a node's connections).
// Two kinds of requests must outlive them: the event stream, which lasts as
// long as its client, and the requests that join nodes, which wait for a
// join (up to a minute) and for the new member to be alive.

// longRequestTime is how long a request that joins a node may take: a join
// (membership's JoinTimeout, 60 s), then the wait for the new worker to be
// alive (30 s), the probes of its addresses and its registration.
const longRequestTime = 2 * time.Minute

// longRoutes are the /api routes that may run up to longRequestTime; their
// deadlines are moved before they are handled or forwarded.
var longRoutes = map[string]bool{
	http.MethodPut + " /api/workers": true,
}

// bodyRead lifts the connection's read deadline once the whole request body
// has been read: the read timeout has done its job (bounding a slow body), and
// in net/http its expiry while the handler runs cancels the request's
// context (the server's background read of the connection fails), which would
// abort a handler that runs longer than it. The idle timeout takes over after
// the answer.
func bodyRead(c *gin.Context) {
	_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Time{})
}

// longRequest lets a request that may run for up to d outlive the server's
// timeouts: its read deadline is lifted (its body has been read) and its
// write deadline moved to d from now.
func longRequest(c *gin.Context, d time.Duration) {
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(d))
}
