// Package client is the Go client of a pio node's public HTTP API and the wire
// types it shares with the server, for users' programs, the CLI and the
// benchmarks. Nodes talk to each other through package rpc, not this.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultHTTPPort is the port assumed when an address names no port.
const DefaultHTTPPort = "8080"

// RequestIDHeader carries a request's ID from the client through forwarding to
// the FSM, so that a retried write is applied once.
const RequestIDHeader = "X-Request-Id"

// NewHTTPClient returns an HTTP client of a node's API (the CLI's, the benchmarks').
func NewHTTPClient(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         d.DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 128,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

// BaseURL turns "HOST", "HOST:PORT" or "http://HOST:PORT" into a base URL.
func BaseURL(addr string) (string, error) {
	a := strings.TrimSpace(addr)
	if a == "" {
		return "", fmt.Errorf("empty address")
	}
	if !strings.Contains(a, "://") {
		a = "http://" + a
	}
	u, err := url.Parse(a)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not HOST[:PORT]", addr)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), DefaultHTTPPort)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Client talks to one node's HTTP API.
type Client struct {
	// Base is the node's base URL, e.g. http://127.0.0.1:8080.
	Base string
	// HTTP is the client used; NewHTTPClient's by default.
	HTTP *http.Client
	// Header is added to every request (may be nil).
	Header http.Header
}

// New returns a client of the node at addr (HOST[:PORT] or a URL).
func New(addr string, timeout time.Duration) (*Client, error) {
	base, err := BaseURL(addr)
	if err != nil {
		return nil, err
	}
	return &Client{Base: base, HTTP: NewHTTPClient(timeout)}, nil
}

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out. A non-2xx answer is returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	_, err := c.DoStatus(ctx, method, path, in, out)
	return err
}

// DoStatus is Do that also returns the HTTP status.
func (c *Client) DoStatus(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, &Error{Message: "cannot reach " + c.Base, Status: 0, Cause: err.Error(),
			Remediation: "check that pio serve runs there and that the address and port are right"}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e = &Error{Message: strings.TrimSpace(string(data)), Status: resp.StatusCode}
		}
		e.Status = resp.StatusCode
		return resp.StatusCode, e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Health asks GET /unit_api/health.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.Do(ctx, http.MethodGet, "/unit_api/health", nil, &h)
	return h, err
}

// Cluster asks GET /api/cluster; stale answers from that node's own view.
func (c *Client) Cluster(ctx context.Context, stale bool) (ClusterInfo, error) {
	var ci ClusterInfo
	p := "/api/cluster"
	if stale {
		p += "?stale=true"
	}
	err := c.Do(ctx, http.MethodGet, p, nil, &ci)
	return ci, err
}

// Join makes the node join the cluster of the node at address.
func (c *Client) Join(ctx context.Context, address, token string, force bool) (JoinResponse, error) {
	var r JoinResponse
	err := c.Do(ctx, http.MethodPost, "/api/cluster/join", JoinRequest{Address: address, Token: token, Force: force}, &r)
	return r, err
}

// Leave makes the node leave its cluster.
func (c *Client) Leave(ctx context.Context) (LeaveResponse, error) {
	var r LeaveResponse
	err := c.Do(ctx, http.MethodPost, "/api/cluster/leave", struct{}{}, &r)
	return r, err
}
