package system

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pioreactor/pio/api"
)

// uiBadProfile has an unknown action type on line 9.
const uiBadProfile = `version: "1.0"
experiment_profile_name: ui demo
metadata:
  author: the UI test
common:
  jobs:
    stirring:
      actions:
        - type: explode
          t: 0
`

const uiGoodProfile = `version: "1.0"
experiment_profile_name: ui demo
metadata:
  author: the UI test
  description: stir, log twice, stop in an hour
common:
  jobs:
    stirring:
      actions:
        - type: start
          t: 0
          options: {target_rpm: 420}
        - type: log
          t: 1s
          options: {message: first line from the UI profile}
        - type: log
          t: 3s
          options: {message: second line from the UI profile}
        - type: stop
          t: 1h
`

// setEditor puts text in the profile editor as typing would (an input event).
func (b *browser) setEditor(text string) {
	b.t.Helper()
	q, _ := json.Marshal(text)
	b.do("type the profile", 10*time.Second, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const t = document.querySelector("#profile-text"); t.focus(); t.value = %s; t.dispatchEvent(new Event("input", {bubbles: true})); t.blur(); })()`, q)))
}

// TestUIProfiles: on the Profiles page, write a profile with an error and
// see it named by line (and the line marked), fix it, save it, run it on an
// experiment and watch its steps turn done in the timeline (the event
// stream, no polling), then stop it and delete the profile.
func TestUIProfiles(t *testing.T) {
	b := newBrowser(t)
	n := startNode(t, "solo")
	waitCluster(t, []*testNode{n}, 1, 1)
	assignAll(t, n, "exp1", "solo")
	const short, long = 10 * time.Second, 30 * time.Second

	b.do("open the Profiles page", short, chromedp.Navigate("http://"+n.addr()+"/#/profiles/exp1"))
	b.waitText("main h1", "Profiles", short)
	b.waitText("#profiles", "No profiles yet", short)
	b.waitText("#timeline", "No profile has run on exp1", short)

	// A new profile with an error: Validate names its line and column, and marks the line.
	b.click("#profile-new", short)
	b.do("name it", short, chromedp.SendKeys(chromedp.CSS("#profile-filename"), "ui_demo.yaml"))
	b.setEditor(uiBadProfile)
	b.click("#profile-validate", short)
	b.signIn(n.apiToken(), short)
	b.waitText("#profile-errors", "Line 9, column", short)
	b.waitText("#profile-errors", "explode", short)
	b.waitText("#profile-errors pre.err-line", "9 |         - type: explode", short)
	b.waitText(".editor .gutter .bad", "9", short)
	if s := b.text("#profile-errors"); !strings.Contains(s, "What to do:") {
		t.Fatalf("the errors say what to do: %q", s)
	}
	// Saving it is refused the same way, and stores nothing.
	b.click("#profile-save", short)
	b.waitText("#toasts", "error in the profile", short)
	var list []map[string]any
	if pcall(t, n, http.MethodGet, "/api/experiment_profiles", nil, &list); len(list) != 0 {
		t.Fatalf("a broken profile was stored: %v", list)
	}
	// The error's button selects its line in the editor.
	b.click(`#profile-errors li[data-line="9"] button`, short)
	b.waitJS("line 9 selected", short, `(() => { const t = document.activeElement; return t.id === "profile-text" && t.value.slice(t.selectionStart, t.selectionEnd).includes("type: explode"); })()`)
	b.screenshot("profile-error")

	// Fixed: valid, a dry run lists the steps with their times, saved.
	b.setEditor(uiGoodProfile)
	b.click("#profile-validate", short)
	b.waitText("#profile-errors", "Valid", short)
	b.click("#profile-dry-run", short)
	b.waitText("#profile-plan", "+1h", short)
	b.waitText("#profile-plan", "first line from the UI profile", short)
	b.click("#profile-save", short)
	b.waitText(`#profiles tr[data-file="ui_demo.yaml"]`, "ui demo", short)
	if text := getText(t, n, "/api/experiment_profiles/ui_demo.yaml", http.StatusOK); text != uiGoodProfile {
		t.Fatalf("stored: %q", text)
	}
	b.screenshot("profile-saved")

	// Run it on exp1: the timeline shows each step turn done, and what is next.
	b.click(`[data-key="run-ui_demo.yaml"]`, short)
	b.waitJS("the run in the timeline", short, `!!document.querySelector('#timeline .run[data-state="running"]')`)
	b.waitJS("three steps done", long, `document.querySelectorAll('#timeline li.step[data-state="done"]').length === 3`)
	b.waitText("#timeline .next-line", "Next: stop stirring", short)
	b.waitText(`#timeline li.next`, "next · planned", short)
	b.waitText(`#timeline li.step[data-state="done"]`, "done at +", short)
	if !runningJobs(t, n)["stirring"] {
		t.Fatal("the run did not start stirring")
	}
	b.screenshot("profile-timeline")

	// Stop it: the run ends and stirring stops.
	b.click(`#timeline .run[data-state="running"] button.danger`, short)
	b.waitText("dialog[open]", "Stop ui_demo.yaml on exp1?", short)
	b.click("#confirm-yes", short)
	b.waitJS("the run stopped", long, `!!document.querySelector('#timeline .run[data-state="stopped"]') && !document.querySelector("dialog[open]")`)
	if b.text("#timeline .next-line") != "" {
		t.Fatalf("a stopped run still says what is next: %q", b.text("#timeline"))
	}
	b.waitText(`#timeline li.step[data-state="not-run"]`, "not run", short)
	eventually(t, short, "stirring stops", func() error {
		if runningJobs(t, n)["stirring"] {
			return fmt.Errorf("stirring still runs")
		}
		return nil
	})

	// Delete the profile, with confirmation.
	b.click(`[data-key="delete-ui_demo.yaml"]`, short)
	b.waitText("dialog[open]", "Delete ui_demo.yaml?", short)
	b.click("#confirm-yes", short)
	b.waitJS("the profile gone", short, `!document.querySelector('#profiles tr[data-file="ui_demo.yaml"]') && !document.querySelector("dialog[open]")`)
	b.screenshot("profile-stopped")
	b.noConsoleErrors()
}

// TestEventsSayProfilesChanged: an upload, and a run's steps, send the
// "profiles" event the Profiles page refetches on.
func TestEventsSayProfilesChanged(t *testing.T) {
	n := startNode(t, "solo")
	waitCluster(t, []*testNode{n}, 1, 1)
	assignAll(t, n, "exp1", "solo")
	s := openEvents(t, n)
	defer s.close()
	s.waitEvent(t, 5*time.Second, "hello", func(ev api.StreamEvent) bool { return ev.Type == "hello" })
	if code := pcall(t, n, http.MethodPost, "/api/experiment_profiles", map[string]any{"filename": "ev.yaml", "body": uiGoodProfile}, nil); code != http.StatusOK {
		t.Fatalf("upload: %d", code)
	}
	s.waitEvent(t, 3*time.Second, "profiles changed", func(ev api.StreamEvent) bool { return ev.Type == "profiles" })
	if code := pcall(t, n, http.MethodPost, "/api/experiments/exp1/experiment_profiles/runs", map[string]any{"filename": "ev.yaml"}, nil); code != http.StatusCreated {
		t.Fatalf("run: %d", code)
	}
	// The start, then the steps at 1 s and 3 s: three events at least, coalesced (one every 200 ms at most).
	seen := 0
	s.waitEvent(t, 10*time.Second, "the run's steps", func(ev api.StreamEvent) bool {
		if ev.Type == "profiles" {
			seen++
		}
		return seen >= 3
	})
}
