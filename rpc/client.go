package rpc

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pioreactor/pio/trust"
)

// RequestIDHeader carries a write's request ID between nodes (as on the public API).
const RequestIDHeader = "X-Request-Id"

// callerHeader carries the node a call was made for, when a member passes it
// on to the leader; it is believed only from a member.
const callerHeader = "X-Pio-Caller"

// HopsHeader counts how many times a request was passed on, to stop loops
// while the leadership moves.
const HopsHeader = "X-Pio-Hops"

// NotLeaderHeader marks an answer of a node that is not (or no longer) the
// leader: the request was not applied and may be sent to the new leader.
const NotLeaderHeader = "X-Pio-Not-Leader"

// maxAnswerBytes bounds the answers a node reads from another.
const maxAnswerBytes = 16 << 20

// Client makes node-to-node calls through a Transport. It is safe for
// concurrent use and keeps connections alive between calls.
type Client struct {
	t  *Transport
	hc *http.Client
}

// NewClient returns a client dialling through t.
func NewClient(t *Transport) *Client {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return t.dial(ctx, addr, serviceHTTP)
		},
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // calls bound themselves with their context
	}
	return &Client{t: t, hc: &http.Client{Transport: tr}}
}

// Reset drops the kept connections: after a change of secrets or mode, new
// calls make new connections.
func (c *Client) Reset() { c.hc.CloseIdleConnections() }

// url makes the URL of path on the node at addr (its cluster address).
func nodeURL(addr, path string) string { return "http://" + addr + path }

// Do calls method path on the node at addr (its cluster address) with an
// optional JSON body and decodes a JSON answer into out. A non-2xx answer is
// returned as *Error; an unreachable node as *Error with status 0.
func (c *Client) Do(ctx context.Context, addr, method, path string, hdr http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, nodeURL(addr, path), body)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &Error{Message: "cannot reach " + addr, Cause: err.Error(),
			Remediation: "check that pio serve runs there and that the cluster port (8300) is open between the nodes"}
	}
	defer resp.Body.Close()
	return readAnswer(resp, out)
}

// readAnswer decodes a JSON answer into out, or its error.
func readAnswer(resp *http.Response, out any) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return &Error{Message: "answer cut short", Cause: err.Error(), Remediation: "retry"}
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e = &Error{Message: strings.TrimSpace(string(data))}
		}
		e.Status = resp.StatusCode
		return e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode the answer of %s: %w", resp.Request.URL.Path, err)
		}
	}
	return nil
}

// Forward sends req (a public API request being forwarded, or a job being
// dispatched) to the node at addr and returns its answer, which the caller
// must close.
func (c *Client) Forward(ctx context.Context, addr string, method, requestURI string, hdr http.Header, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, nodeURL(addr, requestURI), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	return c.hc.Do(req)
}

// Credentials asks the member at addr (its cluster address) for the cluster's
// secrets and a certificate, as a node without one: the member must prove
// it holds the CA that caHash pins before the secret is sent.
func (c *Client) Credentials(ctx context.Context, addr, caHash string, req CredentialsRequest, out any) (*x509.Certificate, error) {
	var ca *x509.Certificate
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, a string) (net.Conn, error) {
			conn, got, err := c.t.DialPinned(ctx, a, caHash)
			ca = got
			return conn, err
		},
	}
	defer tr.CloseIdleConnections()
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, nodeURL(addr, "/rpc/credentials"), bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(hreq)
	if err != nil {
		if errors.Is(err, trust.ErrOtherCluster) {
			return nil, err
		}
		return nil, &Error{Message: "cannot reach " + addr + " securely", Cause: err.Error(),
			Remediation: "check that pio serve runs there and that the cluster port (8300) is open"}
	}
	defer resp.Body.Close()
	return ca, readAnswer(resp, out)
}

// AddMember asks the leader, through the member at addr, to add the calling node.
func (c *Client) AddMember(ctx context.Context, addr string, req MemberRequest) (MemberResponse, error) {
	var r MemberResponse
	err := c.Do(ctx, addr, http.MethodPost, "/rpc/members", nil, req, &r)
	return r, err
}

// RemoveMember asks the leader, through the member at addr, to remove a node.
func (c *Client) RemoveMember(ctx context.Context, addr, nodeID string) error {
	return c.Do(ctx, addr, http.MethodDelete, "/rpc/members/"+url.PathEscape(nodeID), nil, nil, nil)
}

// MemberStatus asks the leader, through the member at addr, whether a node is a member or was removed.
func (c *Client) MemberStatus(ctx context.Context, addr, nodeID string) (MemberStatus, error) {
	var st MemberStatus
	err := c.Do(ctx, addr, http.MethodGet, "/rpc/members/"+url.PathEscape(nodeID), nil, nil, &st)
	return st, err
}

// WaitApplied waits until the node at addr has applied index (or ctx ends)
// and returns the index it has applied.
func (c *Client) WaitApplied(ctx context.Context, addr string, index uint64) (uint64, error) {
	var a Applied
	err := c.Do(ctx, addr, http.MethodGet, fmt.Sprintf("/rpc/applied?index=%d", index), nil, nil, &a)
	return a.Index, err
}
