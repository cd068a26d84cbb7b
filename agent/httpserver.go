package agent

import (
	"net/http"
	"time"
)

// HTTPLimits bounds what one client may hold of a node's HTTP server: the
// time to send its headers and its body, the time to answer, how long an idle
// keep-alive connection stays open, and the size of the headers. Without them
// a stranger on the LAN could hold every connection of a node (slow headers,
// slow bodies, idle connections) or make it buffer huge headers. GET
// /api/events and the requests that join nodes lift or move their own
// deadlines (package api, deadlines.go). Tests shorten them; they are not a
// setting of `pio serve`.
type HTTPLimits struct {
	// ReadHeaderTimeout bounds the time to send the request line and headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the time to send the whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the request's headers to the end of the answer.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection waits for its next
	// request. It is longer than the idle timeout of the nodes' own HTTP
	// clients (90 s, api/client), so a node never reuses a connection that
	// the other node is closing.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers (431 beyond).
	MaxHeaderBytes int
}

// DefaultHTTPLimits are the limits of `pio serve`.
func DefaultHTTPLimits() HTTPLimits {
	return HTTPLimits{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// server returns an HTTP server of h with these limits; a zero field takes its default.
func (l HTTPLimits) server(h http.Handler) *http.Server {
	d := DefaultHTTPLimits()
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	maxHeader := l.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = d.MaxHeaderBytes
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: pick(l.ReadHeaderTimeout, d.ReadHeaderTimeout),
		ReadTimeout:       pick(l.ReadTimeout, d.ReadTimeout),
		WriteTimeout:      pick(l.WriteTimeout, d.WriteTimeout),
		IdleTimeout:       pick(l.IdleTimeout, d.IdleTimeout),
		MaxHeaderBytes:    maxHeader,
	}
}
