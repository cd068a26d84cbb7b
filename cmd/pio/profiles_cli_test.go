package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/agent"
	"github.com/pioreactor/pio/api/client"
)

// cliNode is a node started in-process as `pio serve` starts one, for the
// CLI to talk to.
type cliNode struct {
	rt    *agent.Runtime
	url   string
	token string
	c     *client.Client
}

// startCLINode starts a standalone worker node on a loopback address of its own.
func startCLINode(t *testing.T, name, ip string) *cliNode {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.Name = name
	cfg.Hardware = "sim"
	cfg.DataDir = filepath.Join(t.TempDir(), name)
	for _, a := range []*string{&cfg.HTTPAddr, &cfg.RaftAddr, &cfg.GossipAddr, &cfg.MQTTAddr, &cfg.MQTTWSAddr} {
		*a = net.JoinHostPort(ip, "0")
	}
	cfg.MDNSAdvertise = false
	cfg.LogOut = io.Discard
	rt, err := agent.StartRuntime(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	n := &cliNode{rt: rt, url: "http://" + rt.Current().HTTPAddr()}
	if b := rt.Current().Trust().Current(); b != nil {
		n.token = b.APIToken
	}
	c, err := client.New(n.url, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Header = http.Header{"Authorization": {"Bearer " + n.token}}
	n.c = c
	// Wait until it leads its cluster of one and knows itself as a worker.
	waitFor(t, 20*time.Second, "the node leads and lists itself", func() error {
		var ws []map[string]any
		if err := c.Do(context.Background(), http.MethodGet, "/api/workers", nil, &ws); err != nil {
			return err
		}
		if len(ws) != 1 {
			return fmt.Errorf("workers: %v", ws)
		}
		return nil
	})
	return n
}

// waitFor retries f until it succeeds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pio runs the CLI with args against n, and returns its stdout, stderr and error.
func (n *cliNode) pio(args ...string) (string, string, error) {
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	sub := args
	if len(args) >= 2 && args[0] == "profiles" {
		sub = append(append([]string{}, args...), "--node", n.url, "--api-token", n.token)
	}
	cmd.SetArgs(sub)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

const cliProfile = `version: "1.0"
experiment_profile_name: cli demo
metadata:
  author: the CLI tests
  description: stir, say hello, stop
common:
  jobs:
    stirring:
      actions:
        - type: start
          t: 0
          options: {target_rpm: 350}
        - type: log
          t: 1s
          options: {message: hello from the CLI}
        - type: stop
          t: 1h
`

// A profile with an unknown key on line 5 and a bad action type on line 9.
const cliBadProfile = `version: "1.0"
experiment_profile_name: broken
common:
  jobs:
    stirring:
      actions:
        - type: start
          t: 0
        - type: explode
          t: 1m
`

func TestProfilesCLI(t *testing.T) {
	n := startCLINode(t, "clione", "127.0.93.1")
	ctx := context.Background()
	if err := n.c.Do(ctx, http.MethodPost, "/api/experiments", map[string]any{"experiment": "cliexp"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.c.Do(ctx, http.MethodPut, "/api/experiments/cliexp/workers", map[string]any{"pioreactor_unit": "clione"}, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "demo.yaml")
	bad := filepath.Join(dir, "broken.yaml")
	os.WriteFile(good, []byte(cliProfile), 0o600)
	os.WriteFile(bad, []byte(cliBadProfile), 0o600)

	// validate: a good file; a bad one, each error as FILE:LINE:COLUMN.
	if out, _, err := n.pio("profiles", "validate", good); err != nil || !strings.Contains(out, "valid profile") {
		t.Fatalf("validate a good profile: %v %q", err, out)
	}
	_, stderr, err := n.pio("profiles", "validate", bad)
	t.Logf("validate:\n%s%v", stderr, err)
	if err == nil {
		t.Fatal("validate a broken profile: no error")
	}
	if !regexp.MustCompile(regexp.QuoteMeta(bad) + `:9:\d+: .*explode`).MatchString(stderr) {
		t.Fatalf("validate's errors: %q, want %s:9:COL: … explode", stderr, bad)
	}
	// An upload of a broken profile stores nothing and says where.
	if _, stderr, err := n.pio("profiles", "upload", bad); err == nil || !strings.Contains(stderr, bad+":9:") {
		t.Fatalf("upload a broken profile: %v %q", err, stderr)
	}
	// upload, list, show.
	if out, _, err := n.pio("profiles", "upload", good); err != nil || !strings.Contains(out, "Uploaded") {
		t.Fatalf("upload: %v %q", err, out)
	}
	out, _, err := n.pio("profiles", "list")
	if err != nil || !strings.Contains(out, "demo.yaml") || !strings.Contains(out, "cli demo") || strings.Contains(out, "broken") {
		t.Fatalf("list: %v %q", err, out)
	}
	if out, _, err := n.pio("profiles", "list", "--json"); err != nil || !strings.Contains(out, `"experimentProfile"`) {
		t.Fatalf("list --json: %v %q", err, out)
	}
	if out, _, err := n.pio("profiles", "show", "demo.yaml"); err != nil || out != cliProfile {
		t.Fatalf("show: %v %q", err, out)
	}
	// Edit: upload again replaces it.
	edited := strings.Replace(cliProfile, "target_rpm: 350", "target_rpm: 360", 1)
	os.WriteFile(good, []byte(edited), 0o600)
	if out, _, err := n.pio("profiles", "upload", good); err != nil || !strings.Contains(out, "Replaced") {
		t.Fatalf("upload again: %v %q", err, out)
	}
	if out, _, _ := n.pio("profiles", "show", "demo.yaml"); out != edited {
		t.Fatalf("after the edit: %q", out)
	}
	// dry-run, of the stored profile and of a local file.
	out, _, err = n.pio("profiles", "dry-run", "demo.yaml")
	if err != nil || !regexp.MustCompile(`(?m)^0s\s+\(all\)\s+stirring\s+start\s+target_rpm=360`).MatchString(out) || !regexp.MustCompile(`(?m)^1h\s+\(all\)\s+stirring\s+stop`).MatchString(out) {
		t.Fatalf("dry-run demo.yaml: %v\n%s", err, out)
	}
	if out, _, err := n.pio("profiles", "dry-run", good); err != nil || !strings.Contains(out, "hello from the CLI") {
		t.Fatalf("dry-run of a file: %v\n%s", err, out)
	}
	// run, runs (steps turn done), stop.
	if out, _, err := n.pio("profiles", "run", "demo.yaml", "--experiment", "cliexp"); err != nil || !strings.Contains(out, "Started demo.yaml") {
		t.Fatalf("run: %v %q", err, out)
	}
	if _, _, err := n.pio("profiles", "run", "demo.yaml", "--experiment", "cliexp"); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Fatalf("a second run on the same experiment: %v", err)
	}
	waitFor(t, 20*time.Second, "the first two steps are done", func() error {
		out, _, err := n.pio("profiles", "runs", "--experiment", "cliexp")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "RUNNING") || len(regexp.MustCompile(`(?m)^\s+\S+\s+done\s`).FindAllString(out, -1)) != 2 ||
			!regexp.MustCompile(`Next: stop stirring at 1h`).MatchString(out) {
			return fmt.Errorf("runs:\n%s", out)
		}
		return nil
	})
	out, _, _ = n.pio("profiles", "runs", "--experiment", "cliexp")
	t.Logf("runs:\n%s", out)
	if out, _, err := n.pio("profiles", "stop", "--experiment", "cliexp"); err != nil || !strings.Contains(out, "Stopped run") || !strings.Contains(out, "clione/stirring") {
		t.Fatalf("stop: %v %q", err, out)
	}
	if out, _, err := n.pio("profiles", "runs", "--experiment", "cliexp"); err != nil || !strings.Contains(out, "STOPPED") || strings.Contains(out, "Next:") {
		t.Fatalf("runs after the stop: %v\n%s", err, out)
	}
	if _, _, err := n.pio("profiles", "stop", "--experiment", "cliexp"); err == nil || !strings.Contains(err.Error(), "nothing to stop") {
		t.Fatalf("stop with nothing running: %v", err)
	}
	// The experiment may be left out when one has workers; an unknown run is a 404.
	if out, _, err := n.pio("profiles", "runs"); err != nil || !strings.Contains(out, "STOPPED") {
		t.Fatalf("runs without --experiment: %v\n%s", err, out)
	}
	var nf *client.Error
	if _, _, err := n.pio("profiles", "stop", "--experiment", "cliexp", "123"); !errors.As(err, &nf) || nf.Status != http.StatusNotFound {
		t.Fatalf("stop an unknown run: %v", err)
	}
	if _, _, err := n.pio("profiles", "dry-run", "none.yaml"); !errors.As(err, &nf) || nf.Status != http.StatusNotFound {
		t.Fatalf("dry-run an unknown profile: %v", err)
	}
	// delete; then show is a 404 with its cause and remedy.
	if out, _, err := n.pio("profiles", "delete", "demo.yaml"); err != nil || !strings.Contains(out, "Deleted") {
		t.Fatalf("delete: %v %q", err, out)
	}
	_, _, err = n.pio("profiles", "show", "demo.yaml")
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Remediation == "" {
		t.Fatalf("show a deleted profile: %v", err)
	}
	// Writes need the token.
	cmd := newRootCmd()
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"profiles", "upload", good, "--node", n.url, "--api-token", "wrong", "--data-dir", dir})
	if err := cmd.Execute(); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("upload with a wrong token: %v", err)
	}
}
