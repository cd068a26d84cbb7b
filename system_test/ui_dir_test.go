package system

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pioreactor/pio/agent"
	"github.com/pioreactor/pio/api"
)

// waitAcross waits until the JavaScript expression is truthy, across page
// loads: a wait cut by a navigation is begun again on the new page.
func (b *browser) waitAcross(what string, within time.Duration, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, time.Until(deadline)+time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(time.Until(deadline)), chromedp.WithPollingInterval(50*time.Millisecond)))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: not within %s (%v)\npage: %s", what, within, err, b.mainText())
		}
	}
}

// otherUI writes a stand-in for Pioreactor's UI build: a single page whose
// assets are under /static/ and whose script writes to the API without any
// Authorization header, as Pioreactor's UI does.
func otherUI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	index := `<!doctype html><html><head><title>other</title><script type="module" src="/static/static/app.js"></script></head>` +
		`<body><h1 id="where"></h1><p id="result">pending</p></body></html>`
	app := `document.querySelector("#where").textContent = location.pathname;
const r = await fetch("/api/experiments", {method: "POST", headers: {"Content-Type": "application/json"},
  body: JSON.stringify({experiment: "from-other-ui", created_at: new Date().toISOString(), delta_hours: 0, worker_count: 0})});
document.querySelector("#result").textContent = "status " + r.status;`
	for name, body := range map[string]string{"index.html": index, "static/app.js": app} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// With ui.dir, a node serves another UI at / as Pioreactor serves its own
// (files under /static/, index.html for every page) and pio's at /pio/. That
// UI sends no token: a browser that is not signed in goes to pio's sign-in
// first, which sets an HttpOnly, SameSite=Strict cookie and comes back; the
// page's writes then go through, while the same cookie from another site's
// page is refused, and signing out forgets it.
func TestUIDirServesAnotherUISignedInByCookie(t *testing.T) {
	dir := otherUI(t)
	n := startNode(t, "solo", func(c *agent.Config) { c.UIDir = dir })
	waitCluster(t, []*testNode{n}, 1, 1)
	base := "http://" + n.addr()
	const short = 15 * time.Second

	// The files, as Pioreactor's web server serves its build.
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: short}
	get := func(c *http.Client, path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	if resp, body := get(plain, "/static/static/app.js"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "from-other-ui") {
		t.Fatalf("/static/static/app.js: %d", resp.StatusCode)
	}
	if resp, _ := get(plain, "/static/nothing.js"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a missing asset: %d, want 404", resp.StatusCode)
	}
	if resp, body := get(plain, "/pio/"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "app.js") {
		t.Fatalf("pio's own UI at /pio/: %d", resp.StatusCode)
	}
	// Not signed in: a page of the other UI sends the browser to pio's sign-in, and says where to come back.
	resp, _ := get(plain, "/pioreactors/exp1?x=1")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/pio/?then=%2Fpioreactors%2Fexp1%3Fx%3D1" {
		t.Fatalf("a page before signing in: %d %q", resp.StatusCode, loc)
	}

	// In a browser: sign in once on pio's page, come back, and the other UI's write goes through.
	b := newBrowser(t)
	b.do("open the other UI", short, chromedp.Navigate(base+"/experiments/new"))
	b.waitJS("the sign-in dialog, its token field focused", short,
		`!!document.querySelector("#signin-dialog[open]") && document.activeElement.id === "signin-token"`)
	b.do("type the token", short, chromedp.SendKeys(chromedp.CSS("#signin-token"), n.apiToken()+"\r"))
	// The page goes back to the other UI (a navigation, which ends a wait begun before it).
	b.waitAcross("back on the other UI's page, its write answered 201", short,
		`location.pathname === "/experiments/new" && (document.querySelector("#result") || {}).textContent === "status 201"`)
	b.noConsoleErrors()
	var exp map[string]any
	mustCall(t, n, http.MethodGet, "/api/experiments/from-other-ui", nil, &exp)

	// The cookie: HttpOnly, SameSite=Strict; from another site's page, a write is refused and changes nothing.
	jar, _ := cookiejar.New(nil)
	signed := &http.Client{Jar: jar, Timeout: short}
	req, _ := http.NewRequest(http.MethodPost, base+"/unit_api/auth_check", nil)
	req.Header.Set("Authorization", "Bearer "+n.apiToken())
	resp, err := signed.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	set := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(set, api.SessionCookie+"=") || !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Strict") {
		t.Fatalf("sign-in cookie: %d %q", resp.StatusCode, set)
	}
	write := func(origin, exp string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/api/experiments", strings.NewReader(fmt.Sprintf(`{"experiment":%q}`, exp)))
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := signed.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := write("http://evil.example", "csrf"); code != http.StatusForbidden {
		t.Fatalf("a write with the cookie from another site: %d, want 403", code)
	}
	if code, _ := call(t, n, http.MethodGet, "/api/experiments/csrf", nil, nil); code != http.StatusNotFound {
		t.Fatalf("the refused write changed something: GET /api/experiments/csrf %d", code)
	}
	if code := write(base, "same-site"); code != http.StatusCreated {
		t.Fatalf("a write with the cookie from the node's own page: %d, want 201", code)
	}
	// Signing out forgets the cookie: the next write is 401 again.
	resp, err = signed.Post(base+"/unit_api/sign_out", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code := write(base, "after-sign-out"); code != http.StatusUnauthorized {
		t.Fatalf("a write after signing out: %d, want 401", code)
	}
}
