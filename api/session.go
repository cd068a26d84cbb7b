package api

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// A browser UI that sends no Authorization header (Pioreactor's own, served
// with ui.dir) is signed in by a cookie: pio's sign-in (POST
// /unit_api/auth_check with the token) sets it, HttpOnly and SameSite=Strict,
// and a write it authorizes must come from this node's own pages (its Origin,
// when the browser sends one, is this host), so another site cannot use it.

// SessionCookie is the cookie that carries the API token of a signed-in browser.
const SessionCookie = "pio_api_token"

// sessionAge is how long a browser stays signed in.
const sessionAge = 30 * 24 * time.Hour

// cookieToken returns the token of the request's session cookie, if any.
func cookieToken(r *http.Request) (string, bool) {
	ck, err := r.Cookie(SessionCookie)
	if err != nil || ck.Value == "" {
		return "", false
	}
	return ck.Value, true
}

// sameOrigin reports whether a request comes from this node's own pages: no
// Origin header (not a cross-site browser request), or one naming this host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// setSession signs the browser in with token (an empty token signs it out).
func setSession(c *gin.Context, token string) {
	ck := &http.Cookie{Name: SessionCookie, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: c.Request.TLS != nil, MaxAge: int(sessionAge / time.Second)}
	if token == "" {
		ck.MaxAge = -1
	}
	http.SetCookie(c.Writer, ck)
}

// signOut answers POST /unit_api/sign_out: the browser's session cookie is
// cleared. It needs no token, so a browser whose token was changed can sign out.
func (s *Server) signOut(c *gin.Context) {
	setSession(c, "")
	c.JSON(http.StatusOK, gin.H{"status": "signed out"})
}

// signedIn reports whether a page request may be shown without signing in
// first: writes need no token, or the browser's cookie holds this cluster's.
func (s *Server) signedIn(r *http.Request) bool {
	if s.authMode() != "token" {
		return true
	}
	t, ok := cookieToken(r)
	return ok && s.cfg.Trust.Current().CheckAPIToken(strings.TrimSpace(t))
}
