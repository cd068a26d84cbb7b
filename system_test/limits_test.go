package system

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pioreactor/pio/agent"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/api"
	"github.com/pioreactor/pio/api/client"
)

func withHTTPLimits(l agent.HTTPLimits) nodeOpt { return func(c *agent.Config) { c.HTTPLimits = l } }

// rawConn opens a TCP connection to n's HTTP API for requests written by hand.
func rawConn(t *testing.T, n *testNode) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", n.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closedWithin reads from conn until the server closes it (EOF or reset) or
// the deadline passes; it returns what was read and how long it took.
func closedWithin(t *testing.T, conn net.Conn, r io.Reader, within time.Duration) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(within))
	b, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not close the connection within %s (read %q)", within, b)
	}
	return string(b), time.Since(start)
}

// A node's HTTP server cuts what would hold its connections: a body sent
// more slowly than the read timeout (408, nothing applied), headers that
// never end, an idle keep-alive connection, headers over 64 KiB (431). The
// event stream is not cut by the read and write timeouts.
func TestHTTPServerTimeouts(t *testing.T) {
	limits := agent.HTTPLimits{ReadHeaderTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		WriteTimeout: time.Second, IdleTimeout: 500 * time.Millisecond}
	n := startNode(t, "limited", withHTTPLimits(limits))
	waitCluster(t, []*testNode{n}, 1, 1)

	t.Run("slow body", func(t *testing.T) {
		conn := rawConn(t, n)
		body := `{"experiment": "slow", "description": "trickled"}`
		// A signed-in client (a stranger's slow body is refused before it is read).
		if _, err := fmt.Fprintf(conn, "POST /api/experiments HTTP/1.1\r\nHost: pio\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", n.apiToken(), len(body)); err != nil {
			t.Fatal(err)
		}
		// One byte every 100 ms: the body would take 5 s, ten times the read timeout.
		stop := make(chan struct{})
		trickled := make(chan int)
		go func() {
			sent := 0
			defer func() { trickled <- sent }()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for sent < len(body) {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte{body[sent]}); err != nil {
					return
				}
				sent++
			}
		}()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		close(stop)
		sent := <-trickled
		if err != nil {
			t.Fatalf("no answer to a slow body (%d of %d bytes sent): %v", sent, len(body), err)
		}
		var e client.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || e.Cause == "" || e.Remediation == "" || sent >= len(body) {
			t.Fatalf("slow body: %d %+v after %d of %d bytes", resp.StatusCode, e, sent, len(body))
		}
		if exps, _ := experimentsOf(n); exps["slow"] {
			t.Fatal("the slow request was applied")
		}
	})

	t.Run("headers that never end", func(t *testing.T) {
		conn := rawConn(t, n)
		if _, err := io.WriteString(conn, "GET /unit_api/health HTTP/1.1\r\nHost: pio\r\n"); err != nil {
			t.Fatal(err)
		}
		got, took := closedWithin(t, conn, conn, 5*time.Second)
		if strings.Contains(got, "200 OK") {
			t.Fatalf("answered unfinished headers: %q", got)
		}
		t.Logf("closed after %s", took)
	})

	t.Run("idle keep-alive connection", func(t *testing.T) {
		conn := rawConn(t, n)
		if _, err := io.WriteString(conn, "GET /unit_api/health HTTP/1.1\r\nHost: pio\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("health: %d, close %v", resp.StatusCode, resp.Close)
		}
		rest, took := closedWithin(t, conn, br, 5*time.Second)
		if rest != "" || took < limits.IdleTimeout/2 {
			t.Fatalf("idle connection closed after %s with %q; want about %s and nothing", took, rest, limits.IdleTimeout)
		}
	})

	t.Run("headers over 64 KiB", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, n.c.Base+"/api/experiments", strings.NewReader(`{"experiment": "big-header"}`))
		req.Header.Set(client.RequestIDHeader, strings.Repeat("r", 500<<10))
		resp, err := n.c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("500 KB header: %d", resp.StatusCode)
		}
		if exps, _ := experimentsOf(n); exps["big-header"] {
			t.Fatal("applied")
		}
	})

	t.Run("event stream outlives the timeouts", func(t *testing.T) {
		s := openEvents(t, n)
		s.waitEvent(t, 5*time.Second, "hello", func(ev api.StreamEvent) bool { return ev.Type == "hello" })
		start := time.Now()
		for i := 0; time.Since(start) < 3*limits.WriteTimeout; i++ {
			if code, _ := createExperiment(t, n, fmt.Sprintf("streamed-%d", i)); code != http.StatusCreated {
				t.Fatalf("create: %d", code)
			}
			s.waitEvent(t, 3*time.Second, fmt.Sprintf("event %d after %s", i, time.Since(start).Round(time.Millisecond)),
				func(ev api.StreamEvent) bool { return ev.Type == "experiments" })
		}
	})
}

// slowPeer is a fake node that answers after delay: its health as name (a
// node of a cluster without secrets, which a node with secrets may not join:
// 409), and a refused invitation (409).
func slowPeer(t *testing.T, name string, delay time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay): // a slow peer, not a wait of the test
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/unit_api/health":
			// A node of a cluster without secrets: a node with secrets may not join it.
			json.NewEncoder(w).Encode(client.Health{Name: name, NodeID: "slow-peer-id", Leader: true, ClusterSize: 1, RaftAddr: "127.0.0.1:1"})
		case "/unit_api/invitation":
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(client.Error{Message: "busy", Status: http.StatusConflict, Cause: name + " is busy", Remediation: "none"})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// Requests that join nodes take longer than the server's read and write
// timeouts (a join waits up to a minute). Against a peer that answers slowly,
// with timeouts of 150 and 300 ms: PUT /api/workers through a follower (the
// follower's forward and the leader's handler) and POST /api/cluster/join
// still get the peer's answer, not a cancelled context or a cut connection.
func TestLongRequestsOutliveTimeouts(t *testing.T) {
	limits := agent.HTTPLimits{ReadTimeout: 150 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	const delay = 600 * time.Millisecond
	a := startNode(t, "long-a", withHTTPLimits(limits))
	waitCluster(t, []*testNode{a}, 1, 1)
	b := startNode(t, "long-b", withHTTPLimits(limits), withJoin(a))
	waitCluster(t, []*testNode{a, b}, 2, 2)
	f := follower(t, []*testNode{a, b})

	w := startNode(t, "long-w", withHTTPLimits(limits)) // standalone: it may join
	waitCluster(t, []*testNode{w}, 1, 1)
	peer := slowPeer(t, "slowpoke", delay)
	start := time.Now()
	code, ae := call(t, f, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": "slowpoke", "address": peer}, nil)
	took := time.Since(start)
	if code != http.StatusConflict || !strings.Contains(ae.Cause, "slowpoke is busy") || took < 2*delay {
		t.Fatalf("add through %s: %d %+v after %s; want the peer's 409 after at least %s", f.cfg.Name, code, ae, took, 2*delay)
	}

	start = time.Now()
	code, ae = call(t, w, http.MethodPost, "/api/cluster/join", map[string]any{"address": peer}, nil)
	took = time.Since(start)
	if code != http.StatusConflict || !strings.Contains(ae.Cause, "runs without secrets") || took < delay {
		t.Fatalf("join: %d %+v after %s; want 409 (a cluster without secrets) after at least %s", code, ae, took, delay)
	}
	waitCluster(t, []*testNode{a, b}, 2, 2)
	waitCluster(t, []*testNode{w}, 1, 1)
}

// Past api.max_event_streams, GET /api/events answers 503 with Retry-After
// and the usual error body; a closed stream frees its place.
func TestEventStreamsLimited(t *testing.T) {
	n := startNode(t, "streams", func(c *agent.Config) { c.MaxEventStreams = 2 })
	waitCluster(t, []*testNode{n}, 1, 1)
	s1, s2 := openEvents(t, n), openEvents(t, n)
	for _, s := range []*eventStream{s1, s2} {
		s.waitEvent(t, 5*time.Second, "hello", func(ev api.StreamEvent) bool { return ev.Type == "hello" })
	}
	resp, err := http.Get(n.c.Base + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	var e client.Error
	decErr := json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || decErr != nil ||
		e.Status != http.StatusServiceUnavailable || e.Message == "" || !strings.Contains(e.Cause, "2 streams") || e.Remediation == "" {
		t.Fatalf("third stream: %d Retry-After %q %+v (%v)", resp.StatusCode, resp.Header.Get("Retry-After"), e, decErr)
	}
	if got := n.a.API().EventStreams(); got != 2 {
		t.Fatalf("%d streams open", got)
	}
	s1.close()
	eventually(t, 5*time.Second, "a place freed", func() error {
		if got := n.a.API().EventStreams(); got != 1 {
			return fmt.Errorf("%d streams", got)
		}
		return nil
	})
	s3 := openEvents(t, n)
	s3.waitEvent(t, 5*time.Second, "hello on the freed place", func(ev api.StreamEvent) bool { return ev.Type == "hello" })
}
