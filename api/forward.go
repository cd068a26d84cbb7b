package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/rpc"
)

// maxHops is how many forwards a request may take.
const maxHops = 3

// isStale reports whether the request asks for a local, possibly stale read.
func isStale(c *gin.Context) bool {
	return c.Request.Method == http.MethodGet && c.Query("stale") == "true"
}

// leaderOrForward lets the leader handle /api requests and makes followers
// forward them to the leader. With no leader it holds the request up to the
// hold timeout, then answers 503 with Retry-After. A write gets a request ID
// here, so that retrying it after a lost leader is applied once. Every /api
// request enters here: a request ID or a name in the path that breaks the
// rules is answered 400 before anything is forwarded or applied.
func (s *Server) leaderOrForward(c *gin.Context) {
	if !checkRequestID(c) || !checkPathNames(c) {
		return
	}
	if isStale(c) {
		c.Next()
		return
	}
	body, ok := readBody(c)
	if !ok {
		return
	}
	if longRoutes[c.Request.Method+" "+c.FullPath()] {
		longRequest(c, longRequestTime)
	} else {
		bodyRead(c)
	}
	if c.GetHeader(client.RequestIDHeader) == "" {
		c.Request.Header.Set(client.RequestIDHeader, uuid.NewString())
	}
	hops, _ := strconv.Atoi(c.GetHeader(rpc.HopsHeader))
	hold := time.NewTimer(s.cfg.HoldTimeout)
	defer hold.Stop()
	// Without a leader, wait for Raft to say there is one (a notification).
	changed := make(chan struct{}, 1)
	stop := s.node.OnLeaderChange(func(string) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer stop()
	var lastErr error
	for {
		if s.node.IsLeader() {
			c.Request.Body = io.NopCloser(bytes.NewReader(body))
			c.Next()
			return
		}
		if id, addr := s.node.Leader(); id != "" && id != s.cfg.NodeID && addr != "" && hops < maxHops {
			err := s.forward(c, id, addr, body, hops+1)
			if err == nil {
				return
			}
			lastErr = err
		}
		// A leader that did not answer is tried again after a short backoff,
		// in case it answers after all; otherwise Raft tells of the next one.
		var retry <-chan time.Time
		if id, _ := s.node.Leader(); id != "" && id != s.cfg.NodeID {
			retry = time.After(100 * time.Millisecond)
		}
		select {
		case <-changed:
			continue
		case <-retry:
			continue
		case <-hold.C:
		case <-c.Request.Context().Done():
		}
		cause := fmt.Sprintf("no leader was elected within %s", s.cfg.HoldTimeout)
		if lastErr != nil {
			cause += "; last attempt: " + lastErr.Error()
		}
		abort(c, http.StatusServiceUnavailable, "no leader", cause,
			"a majority of the voters must be running and reach each other; check `pio status --node` on each node, then retry (reads may use ?stale=true)")
		return
	}
}

// forward sends the request to the leader leaderID at addr (its cluster
// address, node-to-node under mutual TLS) and copies its answer back. An
// error means nothing was answered yet and the request may be retried
// (writes carry their request ID, so a retry is applied once). The attempt is
// abandoned when this node learns of another leader: a leader cut off by a
// partition never answers.
func (s *Server) forward(c *gin.Context, leaderID, addr string, body []byte, hops int) error {
	ctx, cancel := context.WithCancel(c.Request.Context())
	defer cancel()
	if leaderID != "" {
		stop := s.node.OnLeaderChange(func(id string) {
			if id != leaderID {
				cancel()
			}
		})
		defer stop()
		if id, _ := s.node.Leader(); id != leaderID {
			cancel()
		}
	}
	hdr := http.Header{}
	for _, h := range []string{"Content-Type", "Accept", client.RequestIDHeader} {
		if v := c.GetHeader(h); v != "" {
			hdr.Set(h, v)
		}
	}
	hdr.Set(rpc.HopsHeader, strconv.Itoa(hops))
	hdr.Set("X-Forwarded-For", c.ClientIP())
	resp, err := s.rpc.Forward(ctx, addr, c.Request.Method, c.Request.URL.RequestURI(), hdr, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(rpc.NotLeaderHeader) != "" {
		io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("%s is no longer the leader", addr)
	}
	for _, h := range []string{"Content-Type", "Retry-After", "Location"} {
		if v := resp.Header.Get(h); v != "" {
			c.Header(h, v)
		}
	}
	if u, ok := s.fsm.UnitByID(leaderID); ok {
		c.Header("X-Pio-Leader", u.HTTPAddr)
	}
	c.Status(resp.StatusCode)
	_, _ = io.Copy(c.Writer, resp.Body)
	c.Abort()
	return nil
}
