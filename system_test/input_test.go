package system

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pioreactor/pio/api/client"
)

// TestBadInputAnswered400 sends bad bodies and names through a follower and
// the leader: each is a 400 with cause and remediation, and nothing changes.
func TestBadInputAnswered400(t *testing.T) {
	nodes := startThree(t)
	leader := leaderOf(t, nodes)
	var follower *testNode
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	if code, _ := createExperiment(t, leader, "existing"); code != http.StatusCreated {
		t.Fatal(code)
	}
	before := leader.a.Node().FSM().Hash()
	cases := []struct {
		name, path, body string
		want             int
		requestID        string
	}{
		{"bad JSON", "/api/experiments", `{"experiment": "x"`, 400, ""},
		{"not an object", "/api/experiments", `["x"]`, 400, ""},
		{"unknown field", "/api/experiments", `{"experiment": "x", "colour": "red"}`, 400, ""},
		{"wrong type", "/api/experiments", `{"experiment": 42}`, 400, ""},
		{"missing name", "/api/experiments", `{"description": "no name"}`, 400, ""},
		{"empty body", "/api/experiments", ``, 400, ""},
		{"two values", "/api/experiments", `{"experiment": "a"} {"experiment": "b"}`, 400, ""},
		{"name current", "/api/experiments", `{"experiment": "current"}`, 400, ""},
		{"name _testing", "/api/experiments", `{"experiment": "_testing_x"}`, 400, ""},
		{"name with slash", "/api/experiments", `{"experiment": "a/b"}`, 400, ""},
		{"name with dollar", "/api/experiments", `{"experiment": "a$b"}`, 400, ""},
		{"name too long", "/api/experiments", `{"experiment": "` + strings.Repeat("x", 200) + `"}`, 400, ""},
		{"tags wrong type", "/api/experiments", `{"experiment": "t", "tags": "a,b"}`, 400, ""},
		{"over 1 MiB", "/api/experiments", `{"experiment": "big", "description": "` + strings.Repeat("x", 1<<20) + `"}`, 400, ""},
		{"duplicate", "/api/experiments", `{"experiment": "existing"}`, 409, ""},
		{"join no address", "/api/cluster/join", `{}`, 400, ""},
		{"join unknown field", "/api/cluster/join", `{"address": "x", "please": true}`, 400, ""},
		{"null body", "/api/experiments", `null`, 400, ""},
		{"name CURRENT", "/api/experiments", `{"experiment": "CURRENT"}`, 400, ""},
		{"name with NUL", "/api/experiments", `{"experiment": "a\u0000b"}`, 400, ""},
		{"name with new line", "/api/experiments", `{"experiment": "a\nb"}`, 400, ""},
		{"name with ..", "/api/experiments", `{"experiment": "a..b"}`, 400, ""},
		{"name with leading space", "/api/experiments", `{"experiment": " a"}`, 400, ""},
		{"description too long", "/api/experiments", `{"experiment": "d", "description": "` + strings.Repeat("x", 4001) + `"}`, 400, ""},
		{"51 tags", "/api/experiments", `{"experiment": "t", "tags": ["` + strings.Repeat(`t", "`, 50) + `t"]}`, 400, ""},
		{"tag too long", "/api/experiments", `{"experiment": "t", "tags": ["` + strings.Repeat("t", 101) + `"]}`, 400, ""},
		{"request ID too long", "/api/experiments", `{"experiment": "rid"}`, 400, strings.Repeat("r", 129)},
		{"request ID of 60 KB", "/api/experiments", `{"experiment": "rid"}`, 400, strings.Repeat("r", 60<<10)},
		{"request ID with space", "/api/experiments", `{"experiment": "rid"}`, 400, "a b"},
		{"request ID on an assignment", "/api/experiments/existing/workers", `{"pioreactor_unit": "nobody"}`, 400, "a/b"},
		{"label too long", "/api/experiments/existing/unit_labels", `{"unit": "w", "label": "` + strings.Repeat("l", 101) + `"}`, 400, ""},
		{"path name current", "/api/experiments/current/workers", `{"pioreactor_unit": "w"}`, 400, ""},
	}
	for _, n := range []*testNode{follower, leader} {
		for _, tc := range cases {
			method := http.MethodPost
			if strings.HasSuffix(tc.path, "/workers") || strings.HasSuffix(tc.path, "/unit_labels") {
				method = http.MethodPut
			}
			req, _ := http.NewRequest(method, n.c.Base+tc.path, bytes.NewBufferString(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.requestID != "" {
				req.Header.Set(client.RequestIDHeader, tc.requestID)
			}
			resp, err := n.c.HTTP.Do(req)
			if err != nil {
				t.Fatalf("%s via %s: %v", tc.name, n.cfg.Name, err)
			}
			var e client.Error
			decErr := json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != tc.want || decErr != nil || e.Message == "" || e.Cause == "" || e.Remediation == "" || e.Status != tc.want {
				t.Errorf("%s via %s: %d %+v (decode: %v), want %d with error, cause and remediation", tc.name, n.cfg.Name, resp.StatusCode, e, decErr, tc.want)
			}
		}
	}
	if after := leader.a.Node().FSM().Hash(); after != before {
		// Only request IDs of refused commands may differ; units and experiments must not.
		exps, _ := experimentsOf(leader)
		if len(exps) != 1 {
			t.Fatalf("bad input changed the experiments: %v", exps)
		}
	}
	// Unknown routes and methods are JSON errors too.
	for path, want := range map[string]int{"/api/nope": 404, "/api/experiments/x/y/z": 404} {
		code, err := leader.c.DoStatus(ctx, http.MethodGet, path, nil, nil)
		if code != want || err == nil {
			t.Errorf("GET %s: %d %v", path, code, err)
		}
	}
}

// TestRetriedRequestAppliedOnce retries a write with the same X-Request-Id,
// as a client does after a lost answer: it is applied once and answers the same.
func TestRetriedRequestAppliedOnce(t *testing.T) {
	nodes := startThree(t)
	send := func(n *testNode, id, name string) int {
		req, _ := http.NewRequest(http.MethodPost, n.c.Base+"/api/experiments", strings.NewReader(`{"experiment":"`+name+`"}`))
		req.Header.Set(client.RequestIDHeader, id)
		resp, err := n.c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(nodes[0], "req-1", "once"); code != http.StatusCreated {
		t.Fatalf("first: %d", code)
	}
	// The retry goes through another node (the client's first node may be dead).
	if code := send(nodes[1], "req-1", "once"); code != http.StatusCreated {
		t.Fatalf("retry: %d, want the first answer (201)", code)
	}
	if code := send(nodes[2], "req-2", "once"); code != http.StatusConflict {
		t.Fatalf("new request for the same name: %d, want 409", code)
	}
	exps, _ := experimentsOf(leaderOf(t, nodes))
	if len(exps) != 1 {
		t.Fatalf("experiments: %v", exps)
	}
}
