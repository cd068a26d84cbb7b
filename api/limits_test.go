package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/membership"
)

// decodeWith runs decodeBody on body and returns the status it answered (200 if none).
func decodeWith(t *testing.T, body string, v any) (int, client.Error) {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	var e client.Error
	if !decodeBody(c, v) {
		_ = json.Unmarshal(w.Body.Bytes(), &e)
	}
	return w.Code, e
}

// A top-level JSON value that is not an object (null above all, which would
// decode into an untouched zero value) is refused.
func TestDecodeBodyWantsAnObject(t *testing.T) {
	for _, body := range []string{"null", " null\n", "[]", `["x"]`, "42", `"x"`, "true"} {
		var b createExperimentBody
		code, e := decodeWith(t, body, &b)
		if code != http.StatusBadRequest || e.Cause != "the body must be a JSON object" || e.Remediation == "" {
			t.Errorf("%q: %d %+v", body, code, e)
		}
	}
	var b createExperimentBody
	if code, e := decodeWith(t, ` {"experiment": "x"} `, &b); code != http.StatusOK || b.Experiment == nil || *b.Experiment != "x" {
		t.Fatalf("an object: %d %+v", code, e)
	}
	if code, e := decodeWith(t, "", &b); code != http.StatusBadRequest || e.Cause != "the body is empty" {
		t.Fatalf("empty: %d %+v", code, e)
	}
}

// fakeMembership counts leaves; the other methods are not called here.
type fakeMembership struct{ leaves atomic.Int32 }

func (f *fakeMembership) Join(context.Context, string, string, bool) (membership.JoinResult, error) {
	return membership.JoinResult{}, nil
}
func (f *fakeMembership) Leave(context.Context) error                { f.leaves.Add(1); return nil }
func (f *fakeMembership) RemoveMember(context.Context, string) error { return nil }
func (f *fakeMembership) States() map[string]membership.MemberState  { return nil }
func (f *fakeMembership) Problems() map[string]string                { return nil }
func (f *fakeMembership) OnChange(func()) func()                     { return func() {} }
func (f *fakeMembership) RemovalBreaksQuorum(string) string          { return "" }
func (f *fakeMembership) ConfirmRemoved(context.Context)             {}
func (f *fakeMembership) Invite(string) (string, error)              { return "", nil }
func (f *fakeMembership) AcceptInvitation(context.Context, string, string) (membership.JoinResult, error) {
	return membership.JoinResult{}, nil
}
func (f *fakeMembership) RotateGossipKey(context.Context, func(string)) (membership.RotationResult, error) {
	return membership.RotationResult{}, nil
}
func (f *fakeMembership) EnableSecurity(context.Context, func(string)) (membership.SecureResult, error) {
	return membership.SecureResult{}, nil
}

// POST /api/cluster/leave leaves only with no body at all or the JSON object
// {}, whatever the framing (Content-Length or chunked); null, other JSON and a
// malformed chunked body are 400 and the node stays.
func TestLeaveBodies(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	mem := &fakeMembership{}
	s := &Server{mem: mem}
	e := gin.New()
	var lastLength atomic.Int64 // the Content-Length the server saw (-1: chunked)
	e.POST("/api/cluster/leave", func(c *gin.Context) { lastLength.Store(c.Request.ContentLength) }, s.leaveCluster)
	hs := httptest.NewServer(e)
	defer hs.Close()

	post := func(body string, chunked bool) int {
		t.Helper()
		var r io.Reader = strings.NewReader(body)
		if chunked {
			r = io.MultiReader(strings.NewReader(body)) // not a *strings.Reader: no length known
		}
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/api/cluster/leave", r)
		if chunked {
			req.ContentLength = -1
		}
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if chunked && body != "" && lastLength.Load() != -1 {
			t.Fatalf("%q was not sent chunked (Content-Length %d)", body, lastLength.Load())
		}
		if resp.StatusCode != http.StatusOK {
			var ce client.Error
			if json.NewDecoder(resp.Body).Decode(&ce) != nil || ce.Cause == "" || ce.Remediation == "" {
				t.Errorf("%q: %d without cause and remediation", body, resp.StatusCode)
			}
		}
		return resp.StatusCode
	}
	for _, chunked := range []bool{false, true} {
		for _, body := range []string{"null", " null ", `{"x": 1}`, "[]", "{", "{} {}", `"leave"`, " "} {
			before := mem.leaves.Load()
			if code := post(body, chunked); code != http.StatusBadRequest || mem.leaves.Load() != before {
				t.Errorf("body %q (chunked %v): %d, leaves %d → %d; want 400 and no leave", body, chunked, code, before, mem.leaves.Load())
			}
		}
		for _, body := range []string{"", "{}", " {}\n"} {
			before := mem.leaves.Load()
			if code := post(body, chunked); code != http.StatusOK || mem.leaves.Load() != before+1 {
				t.Errorf("body %q (chunked %v): %d; want 200 and a leave", body, chunked, code)
			}
		}
	}

	// A malformed chunked body written by hand: 400, no leave.
	before := mem.leaves.Load()
	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "POST /api/cluster/leave HTTP/1.1\r\nHost: pio\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || mem.leaves.Load() != before {
		t.Fatalf("malformed chunked body: %d, leaves %d → %d", resp.StatusCode, before, mem.leaves.Load())
	}
}

// checkRequestID and checkPathNames refuse what the rules refuse, with a 400
// that says why; $broadcast and $experiment may stand in a path.
func TestRequestIDAndPathNames(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	ok := func(c *gin.Context) {
		if checkRequestID(c) && checkPathNames(c) {
			c.Status(http.StatusNoContent)
		}
	}
	e.GET("/w/:unit/e/:exp", ok)
	get := func(path, rid string) (int, client.Error) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if rid != "" {
			req.Header.Set(client.RequestIDHeader, rid)
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		var ce client.Error
		_ = json.Unmarshal(w.Body.Bytes(), &ce)
		return w.Code, ce
	}
	for _, tc := range []struct {
		path, rid string
		want      int
	}{
		{"/w/worker1/e/exp1", "", 204},
		{"/w/worker1/e/exp1", "0b6e5a8e-3c1f-4d53-9f8e-5f6b1e2a9c11", 204},
		{"/w/$broadcast/e/$experiment", "a.b_c:d", 204},
		{"/w/worker1/e/exp%201", strings.Repeat("r", 128), 204},
		{"/w/worker1/e/exp1", strings.Repeat("r", 129), 400},
		{"/w/worker1/e/exp1", "a b", 400},
		{"/w/worker1/e/exp1", "é", 400},
		{"/w/localhost/e/exp1", "", 400},
		{"/w/a.b/e/exp1", "", 400},
		{"/w/worker1/e/current", "", 400},
		{"/w/worker1/e/a%00b", "", 400},
		{"/w/worker1/e/a..b", "", 400},
		{"/w/worker1/e/%20lead", "", 400},
		{"/w/worker1/e/_testing_x", "", 400},
		{"/w/worker1/e/" + strings.Repeat("x", 200), "", 400},
	} {
		code, ce := get(tc.path, tc.rid)
		if code != tc.want || (code == 400 && (ce.Cause == "" || ce.Remediation == "")) {
			t.Errorf("%s (request ID %.20q): %d %+v, want %d", tc.path, tc.rid, code, ce, tc.want)
		}
	}
}
