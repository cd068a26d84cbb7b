package api

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/rpc"
)

// Writes to the API need the cluster's API token (Authorization: Bearer
// API-TOKEN); reads need it too when api.read_auth is on, downloads of
// exports (GET /exports/{file}) included. Requests that come
// from a member over the cluster port (forwarded to the leader, or dispatched
// to a worker) were checked by the node that received them. A cluster made
// before pio had secrets has no token: its API stays open until
// `pio security enable`, and `api.auth: off` opens it on purpose.

// authMode says how this node's API takes writes: "token", "off" or "open".
func (s *Server) authMode() string {
	switch b := s.cfg.Trust.Current(); {
	case b == nil, b.Phase != "": // no secrets, or not all members hold them yet
		return "open"
	case s.cfg.Auth == "off":
		return "off"
	}
	return "token"
}

// isWrite reports whether a method changes something.
func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// authorize lets a request through, or answers 401 for a missing or wrong API token.
func (s *Server) authorize(c *gin.Context) {
	r := c.Request
	path := r.URL.Path
	export := strings.HasPrefix(path, "/exports/")
	api := strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/unit_api/") || path == "/metrics" || export
	switch {
	case rpc.FromMember(r.Context()), s.authMode() != "token":
		c.Next()
		return
	case !isWrite(r.Method) && (!s.cfg.ReadAuth || !api || path == "/unit_api/health"):
		c.Next() // the UI's files and the health answer stay readable for the sign-in
		return
	case r.Method == http.MethodPost && (path == "/unit_api/invitation" || path == "/unit_api/sign_out"):
		c.Next() // trust on first use: only a fresh node accepts (see membership); signing out changes nothing
		return
	}
	b := s.cfg.Trust.Current()
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	fromCookie := false
	if !ok {
		token, fromCookie = cookieToken(r) // a signed-in browser (see session.go)
	}
	if !ok && !fromCookie && (r.Method == http.MethodGet && path == "/api/events" || export && !isWrite(r.Method)) {
		// A browser's EventSource and a download link cannot send headers (only with api.read_auth on).
		token = r.URL.Query().Get("access_token")
	}
	if b.CheckAPIToken(strings.TrimSpace(token)) {
		if fromCookie && isWrite(r.Method) && !sameOrigin(r) {
			s.refused.Refused(c.ClientIP(), "a write from another site's page", "request", r.Method+" "+path, "origin", r.Header.Get("Origin"))
			abort(c, http.StatusForbidden, "cross-site request refused", "a page of "+quoteCut(r.Header.Get("Origin"))+" asked this node to change something with its sign-in cookie",
				"change the cluster from the node's own pages, or send Authorization: Bearer API-TOKEN")
			return
		}
		if !fromCookie && path == "/unit_api/auth_check" && r.Method == http.MethodPost {
			setSession(c, strings.TrimSpace(token)) // the sign-in signs the browser in for pages that send no header
		}
		c.Next()
		return
	}
	if fromCookie {
		setSession(c, "") // a cookie of another cluster, or an old token: forget it
	}
	cause := "the request has no Authorization: Bearer API-TOKEN header"
	if token != "" {
		cause = "the API token is not this cluster's"
	}
	s.refused.Refused(c.ClientIP(), "an API request without a valid API token", "request", r.Method+" "+path)
	c.Header("WWW-Authenticate", `Bearer realm="pio"`)
	abort(c, http.StatusUnauthorized, "missing or wrong API token", cause,
		"send Authorization: Bearer API-TOKEN; print the token with `sudo pio token --api` on a Pioreactor of the cluster "+
			"(the CLI reads it from --api-token, PIO_API_TOKEN or the data dir); in the UI, sign in")
}

// authCheck answers POST /unit_api/auth_check: it changes nothing, and it is
// authorized as every write is, so the UI's sign-in checks a token before it
// keeps it (a missing or wrong one gets the usual 401). The answer says how
// this node takes writes and reads, as GET /unit_api/health does.
func (s *Server) authCheck(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"auth": s.authMode(), "read_auth": s.cfg.ReadAuth})
}

// Authorized reports whether a client presenting token (empty for none) may
// write (write true) or read through this node, by the same rules as the
// API's own requests: it is how the MQTT broker decides what its clients may do.
func (s *Server) Authorized(token string, write bool) bool {
	switch {
	case s.authMode() != "token":
		return true
	case !write && !s.cfg.ReadAuth:
		return true
	}
	return s.cfg.Trust.Current().CheckAPIToken(strings.TrimSpace(token))
}
