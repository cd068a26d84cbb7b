package system

import (
	"encoding/json"
	"github.com/pioreactor/pio/agent"
	"net/http"
	"strings"
	"testing"
)

// TestAuthCheck: POST /unit_api/auth_check (the UI's sign-in) takes a token as
// every write does and changes nothing: 401 with the usual error without the
// cluster's token, 200 with it, 200 for anyone when api.auth is off.
func TestAuthCheck(t *testing.T) {
	n := startNode(t, "solo")
	lax := startNode(t, "lax", func(c *agent.Config) { c.APIAuth = "off" })
	waitCluster(t, []*testNode{n}, 1, 1)
	waitCluster(t, []*testNode{lax}, 1, 1)

	check := func(n *testNode, token string) (int, http.Header, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, n.c.Base+"/unit_api/auth_check", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := n.anonymous().HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("auth_check via %s: %v", n.cfg.Name, err)
		}
		return resp.StatusCode, resp.Header, body
	}

	for _, c := range []struct{ token, cause string }{
		{"", "no Authorization"},
		{"pioapi_not-this-one", "not this cluster's"},
		{n.joinToken(), "not this cluster's"}, // the other token `pio token` prints
	} {
		code, hdr, body := check(n, c.token)
		if code != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("token %q: %d %v, want 401 with WWW-Authenticate", c.token, code, hdr)
		}
		if cause, _ := body["cause"].(string); !strings.Contains(cause, c.cause) || body["remediation"] == "" {
			t.Fatalf("token %q: %v, want the cause %q and a remediation", c.token, body, c.cause)
		}
	}
	if code, _, body := check(n, n.apiToken()); code != http.StatusOK || body["auth"] != "token" || body["read_auth"] != false {
		t.Fatalf("the cluster's token: %d %v", code, body)
	}
	if code, _, body := check(lax, ""); code != http.StatusOK || body["auth"] != "off" {
		t.Fatalf("api.auth off, no token: %d %v", code, body)
	}
}
