package system

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/pioreactor/pio/agent"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pioreactor/pio/web"
)

// The browser tests drive Debian's chromium (headless) with chromedp against
// real nodes. Without chromium they skip, unless PIO_REQUIRE_BROWSER is set
// (CI sets it), in which case they fail.

// chromiumPath finds the browser, or skips (or fails, under PIO_REQUIRE_BROWSER) the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PIO_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("PIO_REQUIRE_BROWSER") != "" {
		t.Fatal("chromium is not installed and PIO_REQUIRE_BROWSER is set: apt-get install chromium (or set PIO_CHROMIUM)")
	}
	t.Skip("chromium is not installed: the browser tests are skipped (apt-get install chromium; CI sets PIO_REQUIRE_BROWSER=1 to fail instead)")
	return ""
}

// browser is one headless chromium tab, with the console watched for errors.
type browser struct {
	t    *testing.T
	ctx  context.Context
	dir  string // screenshots
	mu   sync.Mutex
	errs []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelTab := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: bctx}
	b.dir = os.Getenv("PIO_TEST_OUT")
	if b.dir == "" {
		b.dir = filepath.Join(os.TempDir(), "pio-ui-screens")
	}
	b.dir = filepath.Join(b.dir, t.Name())
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Start the browser and subscribe to its console before the first page.
	if err := chromedp.Do(bctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	lctx, cancelListen := context.WithCancel(bctx)
	msgs := chromedp.Console(lctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			switch {
			case m.IsException(), m.Type == chromedp.ConsoleError && m.Source == "":
				b.mu.Lock()
				b.errs = append(b.errs, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				b.mu.Unlock()
			case m.Source == "network":
				// A refused request (a 4xx the UI shows, a stopped node) is logged by the browser itself.
				t.Logf("browser log: %s", m)
			}
		}
	}()
	t.Cleanup(func() {
		cancelListen()
		<-done
		cancelTab() // closes the tab
		cancelAlloc()
		t.Logf("screenshots in %s", b.dir)
	})
	return b
}

// do runs actions within a deadline.
func (b *browser) do(what string, within time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage: %s", what, err, b.mainText())
	}
}

// click clicks the element of a CSS selector; a node replaced by a redraw
// between the look-up and the click is looked up again.
func (b *browser) click(sel string, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, time.Until(deadline))
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "Could not find node") || time.Now().After(deadline) {
			b.t.Fatalf("click %s: %v\npage: %s", sel, err, b.mainText())
		}
	}
}

// waitJS waits until the JavaScript expression is truthy in the page.
func (b *browser) waitJS(what string, within time.Duration, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.t.Fatalf("%s: not shown within %s (%v)\npage: %s", what, within, err, b.mainText())
	}
}

// waitText waits until the element of the CSS selector shows text containing want.
func (b *browser) waitText(sel, want string, within time.Duration) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("%s shows %q", sel, want), within,
		fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q); })()`, sel, want))
}

func (b *browser) text(sel string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
	return s
}

func (b *browser) mainText() string {
	s := b.text("header") + " | " + b.text("#banner") + " | " + b.text("main") + " | " + b.text("dialog[open]")
	if len(s) > 3000 {
		s = s[:3000] + "…"
	}
	return s
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) noConsoleErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) > 0 {
		b.t.Fatalf("console errors:\n%s", strings.Join(b.errs, "\n"))
	}
}

// go opens a hash route of the page already loaded (no reload) and waits for its heading.
func (b *browser) route(hash, heading string) {
	b.t.Helper()
	b.do("go to "+hash, 10*time.Second, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, hash)))
	b.waitText("main h1", heading, 10*time.Second)
}

// signIn waits for the sign-in dialog with its token field focused, types the
// token and Enter, and waits until the dialog closed (the node took the token).
func (b *browser) signIn(token string, within time.Duration) {
	b.t.Helper()
	b.waitJS("the sign-in dialog, its token field focused", within,
		`!!document.querySelector("#signin-dialog[open]") && document.activeElement.id === "signin-token" && document.activeElement.type === "password"`)
	b.do("type the token", within, chromedp.SendKeys(chromedp.CSS("#signin-token"), token+"\r"))
	b.waitJS("the sign-in dialog closed", within, `!document.querySelector("#signin-dialog[open]")`)
}

func TestUIInventoryExperimentsJobsAndLeaderFailover(t *testing.T) {
	b := newBrowser(t)
	nodes := startThree(t)
	f := follower(t, nodes)
	delta := startNode(t, "delta")
	waitCluster(t, []*testNode{delta}, 1, 1)
	const short, long = 10 * time.Second, 20 * time.Second

	// The page, on a follower.
	b.do("open the UI", short, chromedp.Navigate("http://"+f.addr()+"/#/inventory"))
	for _, n := range nodes {
		b.waitText(fmt.Sprintf(`#inventory tr[data-unit=%q]`, n.cfg.Name), "alive", short)
	}
	b.waitText("#status-text", "via "+f.cfg.Name, short)
	b.waitJS("the live dot", short, `document.querySelector("#live-dot").classList.contains("live")`)

	// An error shows the API's cause and remediation: adding a node nobody runs.
	// It is the page's first write: the sign-in dialog opens over the Add dialog,
	// and once signed in the add goes on.
	b.click("#add-worker", short)
	b.waitJS("the dialog open with the name focused", short, `document.querySelector("dialog[open]") && document.activeElement.id === "new-unit-name"`)
	b.do("add a unit that is not there", short,
		chromedp.SendKeys(chromedp.CSS("#new-unit-name"), "nosuchunit"),
		chromedp.SendKeys(chromedp.CSS("#new-unit-address"), "127.0.0.1:9"),
		chromedp.Click(chromedp.CSS("#add-submit")))
	b.signIn(f.apiToken(), short)
	b.waitText("#add-progress .error-box", "What to do:", long)
	if s := b.text("#add-progress .error-box"); !strings.Contains(s, "Cause:") || strings.Contains(s, "API token") {
		t.Fatalf("not the add's own error, with its cause: %q", s)
	}
	// Escape closes the dialog and gives the focus back to its button.
	b.do("escape", short, chromedp.KeyEvent("\x1b"))
	b.waitJS("the dialog closed, focus back", short, `!document.querySelector("dialog[open]") && document.activeElement.id === "add-worker"`)

	// Add the standalone node through the popup: the dialog shows progress until it is in.
	b.do("add delta", short,
		chromedp.Click(chromedp.CSS("#add-worker")),
		chromedp.SendKeys(chromedp.CSS("#new-unit-name"), "delta"),
		chromedp.SendKeys(chromedp.CSS("#new-unit-address"), delta.addr()),
		chromedp.Click(chromedp.CSS("#add-submit")))
	b.waitJS("the dialog closed", long, `!document.querySelector("dialog[open]")`)
	b.waitText(`#inventory tr[data-unit="delta"]`, "alive", long)
	b.screenshot("inventory")

	// Experiments: create one, describe and tag it, assign delta.
	b.route("#/experiments", "Experiments")
	b.do("create exp1", short,
		chromedp.SendKeys(chromedp.CSS("#exp-name"), "exp1"),
		chromedp.SendKeys(chromedp.CSS("#exp-desc"), "first run"),
		chromedp.SendKeys(chromedp.CSS("#exp-tags"), "ecoli, 37C"),
		chromedp.Click(chromedp.CSS("#exp-create")))
	b.waitText("#experiment-detail", "first run", short)
	b.waitText("#experiment-detail .tags", "37C", short)
	b.do("assign delta", short, chromedp.SetValue(chromedp.CSS("#assign-unit"), "delta"), chromedp.Click(chromedp.CSS("#assign-submit")))
	b.waitText("#experiment-workers", "delta", short)
	b.do("label delta", short, chromedp.SendKeys(chromedp.CSS("#label-delta"), "flask A\r"))
	eventually(t, short, "label stored", func() error {
		var labels map[string]string
		if code, _ := call(t, f, http.MethodGet, "/api/experiments/exp1/unit_labels", nil, &labels); code != 200 || labels["delta"] != "flask A" {
			return fmt.Errorf("%d %v", code, labels)
		}
		return nil
	})
	b.screenshot("experiments")

	// Inventory: the assignment is highlighted; identify, inactive and back, unassign, remove.
	b.route("#/inventory", "Inventory")
	b.waitText(`#inventory tr[data-unit="delta"]`, "exp1", short)
	b.waitText(".summary", "exp1 1 worker", short)
	blinks := func() float64 {
		var hw map[string]any
		if err := delta.c.Do(ctx, http.MethodGet, "/unit_api/hardware", nil, &hw); err != nil {
			t.Fatal(err)
		}
		n, _ := hw["blinks"].(float64)
		return n
	}
	before := blinks()
	b.click(`[data-key="identify-delta"]`, short)
	b.waitText("#toasts", "delta blinked", short)
	if after := blinks(); after <= before {
		t.Fatalf("delta's LED did not blink: %v then %v", before, after)
	}
	b.click(`[data-key="active-delta"]`, short)
	b.waitJS("delta inactive", short, `document.querySelector('[data-key="active-delta"]').getAttribute("aria-checked") === "false"`)
	b.waitText(`[data-key="active-delta"]`, "inactive", short)
	b.click(`[data-key="active-delta"]`, short)
	b.waitJS("delta active", short, `document.querySelector('[data-key="active-delta"]').getAttribute("aria-checked") === "true"`)
	b.click(`[data-key="unassign-delta"]`, short)
	b.waitText(`#inventory tr[data-unit="delta"]`, "unassigned", short)
	b.click(`[data-key="remove-delta"]`, short)
	b.waitText("dialog[open]", "Remove delta?", short)
	b.click("#confirm-yes", short)
	b.waitJS("delta gone", long, `!document.querySelector('#inventory tr[data-unit="delta"]') && !document.querySelector("dialog[open]")`)

	// Pioreactors: assign a member, start stirring, see it ready.
	unit := f.cfg.Name
	b.route("#/experiments/exp1", "Experiments")
	b.do("assign "+unit, short, chromedp.SetValue(chromedp.CSS("#assign-unit"), unit), chromedp.Click(chromedp.CSS("#assign-submit")))
	b.waitText("#experiment-workers", unit, short)
	b.route("#/pioreactors/exp1", "Pioreactors")
	card := fmt.Sprintf(`#unit-cards article[data-unit=%q]`, unit)
	b.waitText(card, "Stirring", short)
	b.click(fmt.Sprintf(`[data-key="%s-stirring-go"]`, unit), short)
	b.waitText(card+` [data-job="stirring"] [data-state]`, "ready", long)
	if j := jobsOn(t, f, unit)["stirring"]; j == nil || j["state"] != "ready" {
		t.Fatalf("stirring on %s: %v", unit, j)
	}
	b.do("OD every second", short, chromedp.SetValue(chromedp.CSS(fmt.Sprintf(`[data-key="%s-od_reading-interval"]`, unit)), "1"))
	b.click(fmt.Sprintf(`[data-key="%s-od_reading-go"]`, unit), short)
	b.waitText(card+` [data-job="od_reading"] [data-state]`, "ready", long)
	// Sleep and resume a job.
	b.click(fmt.Sprintf(`[data-key="%s-od_reading-sleep"]`, unit), short)
	b.waitText(card+` [data-job="od_reading"] [data-state]`, "sleeping", long)
	if j := jobsOn(t, f, unit)["od_reading"]; j["state"] != "sleeping" {
		t.Fatalf("od_reading after Sleep: %v", j)
	}
	b.click(fmt.Sprintf(`[data-key="%s-od_reading-sleep"]`, unit), short)
	b.waitText(card+` [data-job="od_reading"] [data-state]`, "ready", long)
	// The OD chart draws the replicated readings, and the job's log shows.
	b.waitJS("an OD line in the chart", 20*time.Second, fmt.Sprintf(`(() => { const f = [...document.querySelectorAll("figure.chart")].find(x => x.textContent.includes("Optical density")); return !!f && !!f.querySelector("polyline") && f.textContent.includes(%q); })()`, unit))
	b.waitText("#logs-h + .logs", "ready: interval=1", long)
	b.screenshot("pioreactors")

	// Kill the leader; the page stays on the follower and keeps working without a reload.
	b.route("#/cluster", "Cluster")
	leader := leaderOf(t, nodes)
	if leader == f {
		t.Fatalf("the browser's node %s became the leader; the test needs it on a follower", f.cfg.Name)
	}
	b.waitText("#leader-name", leader.cfg.Name, short)
	b.do("mark the page", short, chromedp.Evaluate[chromedp.Void](`window.__noReload = true`))
	killed := time.Now()
	leader.stop()
	rest := without(nodes, leader)
	newLeader := leaderOf(t, rest)
	b.waitText("#status-text", "leader "+newLeader.cfg.Name, short)
	b.waitText("#leader-name", newLeader.cfg.Name, short)
	t.Logf("the page showed the new leader %s %s after the old one stopped", newLeader.cfg.Name, time.Since(killed).Round(time.Millisecond))
	b.waitJS("the old leader shown dead", long, fmt.Sprintf(`(() => { const r = document.querySelector('#members tr[data-node=%q]'); return !!r && /dead|suspect/.test(r.textContent); })()`, leader.a.NodeID()))
	b.waitText("#events", leader.cfg.Name+" stopped answering", long)
	b.screenshot("cluster")

	b.route("#/experiments", "Experiments")
	b.do("create exp2 after the failover", short,
		chromedp.SendKeys(chromedp.CSS("#exp-name"), "exp2"),
		chromedp.Click(chromedp.CSS("#exp-create")))
	b.waitText("#experiment-detail", "exp2", long)
	b.waitJS("the page on exp2", short, `location.hash === "#/experiments/exp2"`)
	b.route("#/pioreactors/exp1", "Pioreactors")
	b.click(fmt.Sprintf(`[data-key="%s-stirring-stop"]`, unit), short)
	b.waitText(card+` [data-job="stirring"] [data-state]`, "off", long)
	b.waitJS("no reload happened", short, `window.__noReload === true`)
	b.noConsoleErrors()
}

// recordSent makes the page note every request it sends (URL, method, its
// X-Request-Id and whether it carried a token) in window.__sent.
const recordSent = `(() => {
	window.__sent = [];
	const send = window.fetch;
	window.fetch = (url, opts = {}) => {
		const hd = new Headers(opts.headers || {});
		window.__sent.push({ url: String(url), method: opts.method || "GET", id: hd.get("X-Request-Id") || "", token: hd.has("Authorization") });
		return send(url, opts);
	};
})()`

type sentRequest struct {
	URL, Method, ID string
	Token           bool
}

// sent returns the requests the page sent (see recordSent) to method and url.
func (b *browser) sent(method, url string) []sentRequest {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	js, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`JSON.stringify(window.__sent.filter(r => r.method === %q && r.url === %q))`, method, url)))
	if err != nil {
		b.t.Fatal(err)
	}
	var out []sentRequest
	if err := json.Unmarshal([]byte(js), &out); err != nil {
		b.t.Fatal(err)
	}
	return out
}

// TestUISignIn: writes need the API token. A fresh page asks for it at its
// first write, refuses a wrong one in the dialog, and once signed in sends the
// same request again (same X-Request-Id: applied once); the sign-in survives a
// reload; sign-out forgets it and Cancel shows the write's 401. A node whose API
// anyone may change shows a warning, and one with api.read_auth asks at load.
func TestUISignIn(t *testing.T) {
	b := newBrowser(t)
	n := startNode(t, "solo")
	lax := startNode(t, "lax", func(c *agent.Config) { c.APIAuth = "off" })
	relic := startNode(t, "relic", func(c *agent.Config) { c.Open = true }) // a cluster made by an older pio
	vault := startNode(t, "vault", func(c *agent.Config) { c.ReadAuth = true })
	for _, x := range []*testNode{n, lax, relic, vault} {
		waitCluster(t, []*testNode{x}, 1, 1)
	}
	const short, long = 10 * time.Second, 20 * time.Second
	copies := func(exp string) int {
		t.Helper()
		var exps []map[string]any
		if code, e := call(t, n, http.MethodGet, "/api/experiments", nil, &exps); code != http.StatusOK {
			t.Fatalf("GET /api/experiments: %d %v", code, e)
		}
		c := 0
		for _, e := range exps {
			if e["experiment"] == exp {
				c++
			}
		}
		return c
	}
	create := func(exp string) {
		t.Helper()
		b.do("create "+exp, short, chromedp.SendKeys(chromedp.CSS("#exp-name"), exp), chromedp.Click(chromedp.CSS("#exp-create")))
	}

	// A fresh page: signed out, no warning.
	b.do("open", short, chromedp.Navigate("http://"+n.addr()+"/#/experiments"))
	b.waitText("main h1", "Experiments", short)
	b.waitJS("Sign in in the header, no warning", short,
		`!document.querySelector("#auth").hidden && document.querySelector("#auth-button").textContent === "Sign in" && document.querySelector("#auth-banner").hidden`)
	b.do("record requests", short, chromedp.Evaluate[chromedp.Void](recordSent))

	// The first write opens the sign-in dialog, with the API's cause and where the token comes from.
	create("exp1")
	b.waitJS("the sign-in dialog, its password field focused", short,
		`!!document.querySelector("#signin-dialog[open]") && document.activeElement.id === "signin-token" && document.activeElement.type === "password"`)
	b.waitText("#signin-why", "no Authorization", short)
	b.waitText("#signin-dialog", "sudo pio token --api", short)
	b.screenshot("signin")

	// A wrong token is refused in the dialog, which stays open; nothing is created.
	b.do("a wrong token", short, chromedp.SendKeys(chromedp.CSS("#signin-token"), "pioapi_wrong\r"))
	b.waitText("#signin-error .error-box", "not this cluster's", short)
	b.waitText("#signin-error .error-box", "What to do:", short)
	b.waitJS("the dialog still open, the wrong token selected to type over", short,
		`(() => { const e = document.activeElement; return !!document.querySelector("#signin-dialog[open]") && e.id === "signin-token" && e.value.length > 0 && e.selectionStart === 0 && e.selectionEnd === e.value.length && localStorage.getItem("pio.apiToken") === null; })()`)
	b.screenshot("signin-refused")
	if c := copies("exp1"); c != 0 {
		t.Fatalf("exp1 created with a wrong token (%d)", c)
	}

	// The cluster's token: signed in, and the create goes through, once, as the same request.
	b.signIn(n.apiToken(), short)
	b.waitText("#experiment-detail", "exp1", long)
	b.waitText("#auth", "Signed in", short)
	b.waitText("#auth-button", "Sign out", short)
	if c := copies("exp1"); c != 1 {
		t.Fatalf("exp1 exists %d times, want once", c)
	}
	if s := b.text("#page-error"); s != "" {
		t.Fatalf("an error after signing in: %q", s)
	}
	posts := b.sent("POST", "/api/experiments")
	if len(posts) != 2 || posts[0].Token || !posts[1].Token || posts[0].ID == "" || posts[0].ID != posts[1].ID {
		t.Fatalf("want the create sent twice, without then with the token, with one X-Request-Id: %+v", posts)
	}

	// A reload keeps the sign-in: a write needs no dialog (it would wait on it).
	b.do("reload", short, chromedp.Reload())
	b.waitText("main h1", "Experiments", short)
	b.waitText("#auth", "Signed in", short)
	create("exp2")
	b.waitText("#experiment-detail", "exp2", long)
	b.screenshot("signed-in")

	// Sign out: the token is forgotten and the next write asks again; Cancel
	// shows the write's 401 with its cause and what to do.
	b.click("#auth-button", short)
	b.waitJS("signed out", short, `document.querySelector("#auth-button").textContent === "Sign in" && localStorage.getItem("pio.apiToken") === null`)
	create("exp3")
	b.waitJS("the sign-in dialog again", short, `!!document.querySelector("#signin-dialog[open]") && document.activeElement.id === "signin-token"`)
	b.click("#signin-cancel", short)
	b.waitText("#page-error .error-box", "missing or wrong API token", short)
	for _, want := range []string{"Cause:", "What to do:", "sudo pio token --api"} {
		if s := b.text("#page-error .error-box"); !strings.Contains(s, want) {
			t.Fatalf("the 401 shown without %q: %q", want, s)
		}
	}
	if c := copies("exp3"); c != 0 {
		t.Fatalf("exp3 created without a token (%d)", c)
	}
	// Signing in from the header.
	b.click("#auth-button", short)
	b.signIn(n.apiToken(), short)
	b.waitText("#auth-button", "Sign out", short)

	// A kept token that is not this cluster's (the node joined another one):
	// shown refused at load; the next write says so and asks again.
	b.do("keep an old token", short, chromedp.Evaluate[chromedp.Void](`localStorage.setItem("pio.apiToken", "pioapi_of-another-cluster")`), chromedp.Reload())
	b.waitText("#auth-state", "Token refused", short)
	b.waitText("#auth-button", "Sign in", short)
	create("exp4")
	b.waitText("#signin-why", "not this cluster's", short)
	b.signIn(n.apiToken(), short)
	b.waitText("#experiment-detail", "exp4", long)
	b.waitText("#auth-state", "Signed in", short)

	// api.auth off: a warning, no sign-in, writes without a token (this origin has none).
	b.do("open lax", short, chromedp.Navigate("http://"+lax.addr()+"/#/experiments"))
	b.waitText("#auth-banner", "api.auth is off on this Pioreactor: anyone on the network can change the cluster", short)
	b.waitJS("no sign-in control", short, `document.querySelector("#auth").hidden`)
	create("unguarded")
	b.waitText("#experiment-detail", "unguarded", long)
	b.screenshot("auth-off")

	// A cluster without secrets: the other warning.
	b.do("open relic", short, chromedp.Navigate("http://"+relic.addr()+"/#/inventory"))
	b.waitText("#auth-banner", "This cluster has no secrets (it was made by an older pio): anyone on the network can change it. Run pio security enable on any Pioreactor.", short)
	b.waitText(`#inventory tr[data-unit="relic"]`, "alive", long)
	b.screenshot("no-secrets")

	// api.read_auth: the page asks at load, shows nothing before, and its event
	// stream takes the token too (the live dot).
	b.do("open vault", short, chromedp.Navigate("http://"+vault.addr()+"/#/inventory"))
	b.waitText("#signin-why", "api.read_auth", short)
	if s := b.text("#inventory"); s != "" {
		t.Fatalf("the inventory shown before signing in: %q", s)
	}
	b.signIn(vault.apiToken(), short)
	b.waitText(`#inventory tr[data-unit="vault"]`, "alive", long)
	b.waitJS("the live dot", short, `document.querySelector("#live-dot").classList.contains("live")`)
	b.waitText("#status-text", "via vault", short)
	// There too, a kept token that is not this cluster's asks again at load.
	b.do("keep an old token", short, chromedp.Evaluate[chromedp.Void](`localStorage.setItem("pio.apiToken", "pioapi_of-another-cluster")`), chromedp.Reload())
	b.waitText("#signin-why", "not this cluster's", short)
	b.signIn(vault.apiToken(), short)
	b.waitText(`#inventory tr[data-unit="vault"]`, "alive", long)
	b.waitJS("the live dot again", short, `document.querySelector("#live-dot").classList.contains("live")`)
	b.screenshot("read-auth")
	b.noConsoleErrors()
}

// TestUIPhoneAndKeyboard checks the pages on a phone-sized screen and by keyboard alone.
func TestUIPhoneAndKeyboard(t *testing.T) {
	b := newBrowser(t)
	n := startNode(t, "solo")
	waitCluster(t, []*testNode{n}, 1, 1)
	b.do("phone viewport", 10*time.Second, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.do("open", 10*time.Second, chromedp.Navigate("http://"+n.addr()+"/#/inventory"))
	b.waitText(`#inventory tr[data-unit="solo"]`, "alive", 10*time.Second)
	// Nothing is wider than the screen but the tables' own scroll boxes.
	b.waitJS("no horizontal page scroll", 5*time.Second, `document.documentElement.scrollWidth <= window.innerWidth + 1`)
	// Tab from the start reaches the navigation and the Add button, with a visible focus ring.
	b.do("tab", 5*time.Second, chromedp.KeyEvent("\t"))
	b.waitJS("focus on a control, visibly", 5*time.Second, `["A", "BUTTON"].includes(document.activeElement.tagName) && document.activeElement.matches(":focus-visible")`)
	b.do("focus add", 5*time.Second, chromedp.Focus(chromedp.CSS("#add-worker")), chromedp.KeyEvent("\r"))
	b.waitJS("dialog by keyboard", 5*time.Second, `document.querySelector("dialog[open]") && document.activeElement.id === "new-unit-name"`)
	b.do("escape", 5*time.Second, chromedp.KeyEvent("\x1b"))
	b.waitJS("dialog closed", 5*time.Second, `!document.querySelector("dialog[open]")`)
	b.screenshot("inventory-phone")
	// The header's Sign in, by keyboard: the dialog fits the screen, Escape closes it, focus goes back.
	b.do("focus sign in", 5*time.Second, chromedp.Focus(chromedp.CSS("#auth-button")), chromedp.KeyEvent("\r"))
	b.waitJS("sign-in dialog by keyboard", 5*time.Second, `!!document.querySelector("#signin-dialog[open]") && document.activeElement.id === "signin-token"`)
	b.waitJS("the sign-in dialog within the screen", 5*time.Second, `(() => { const r = document.querySelector("#signin-dialog").getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth; })()`)
	b.screenshot("signin-phone")
	b.do("escape", 5*time.Second, chromedp.KeyEvent("\x1b"))
	b.waitJS("sign-in closed, focus back on its button", 5*time.Second, `!document.querySelector("dialog[open]") && document.activeElement.id === "auth-button"`)
	for _, p := range []struct{ hash, h1 string }{{"#/experiments", "Experiments"}, {"#/pioreactors", "Pioreactors"}, {"#/cluster", "Cluster"}} {
		b.route(p.hash, p.h1)
		b.waitJS("no horizontal page scroll on "+p.hash, 5*time.Second, `document.documentElement.scrollWidth <= window.innerWidth + 1`)
		b.screenshot(strings.TrimPrefix(p.hash, "#/") + "-phone")
	}
	b.noConsoleErrors()
}

// TestUIInventoryOf100Units measures how long the Inventory takes to show 100
// units (served as canned JSON: only the rendering is measured). It reports
// the time and fails only if the rows do not appear at all.
func TestUIInventoryOf100Units(t *testing.T) {
	b := newBrowser(t)
	var workers, assignments []map[string]any
	var members []map[string]any
	for i := range 100 {
		unit := fmt.Sprintf("pio%03d", i)
		id := fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
		exp := any(nil)
		if i%3 != 0 {
			exp = fmt.Sprintf("exp%d", i%5)
		}
		workers = append(workers, map[string]any{"pioreactor_unit": unit, "is_active": 1, "model_name": "pioreactor_40ml", "model_version": "1.1",
			"ipv4_address": fmt.Sprintf("127.0.1.%d", i+1), "node_id": id, "health": "alive", "last_seen": time.Now().UTC().Format(time.RFC3339Nano)})
		assignments = append(assignments, map[string]any{"pioreactor_unit": unit, "experiment": exp, "is_active": 1})
		members = append(members, map[string]any{"name": unit, "node_id": id, "worker": true, "voter": i < 5, "leader": i == 0, "health": "alive",
			"http_addr": fmt.Sprintf("127.0.1.%d:8080", i+1)})
	}
	canned := map[string]any{
		"/api/workers":                      workers,
		"/api/workers/assignments":          assignments,
		"/api/experiments/assignment_count": []map[string]any{{"experiment": "exp1", "worker_count": 20}, {"experiment": "exp2", "worker_count": 20}},
		"/api/experiments":                  []map[string]any{},
		"/api/cluster":                      map[string]any{"leader": map[string]any{"name": "pio000", "node_id": members[0]["node_id"]}, "term": 2, "commit_index": 9, "members": members},
	}
	ui := web.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/events" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"type\":\"hello\",\"node\":\"pio000\",\"leader\":\"pio000\",\"term\":2}\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		if v, ok := canned[r.URL.Path]; ok {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(v)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			http.NotFound(w, r)
			return
		}
		ui.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer srv.CloseClientConnections()
	b.do("open", 10*time.Second, chromedp.Navigate(srv.URL+"/#/inventory"))
	b.waitJS("100 rows", 10*time.Second, `document.querySelectorAll("#inventory tbody tr").length === 100`)
	ctx2, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	shown, err := chromedp.Run(ctx2, chromedp.Evaluate[float64](`window.pio.firstRender()`))
	if err != nil {
		t.Fatal(err)
	}
	rerender, err := chromedp.Run(ctx2, chromedp.Evaluate[float64](`(() => { const t = performance.now(); for (let i = 0; i < 10; i++) window.pio.render(); return (performance.now() - t) / 10; })()`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Inventory of 100 units: first drawn %.0f ms after navigation started (page load, fetches and render); one re-render %.1f ms", shown, rerender)
	b.screenshot("inventory-100")
	b.noConsoleErrors()
}
