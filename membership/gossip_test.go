package membership

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// startGossip starts real gossip (memberlist over UDP and TCP) on host.
func startGossip(t *testing.T, host, id string, key []byte, label string) *Gossip {
	t.Helper()
	cfg := DefaultGossipConfig()
	cfg.BindAddr = host + ":0"
	cfg.Label = label
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if key != nil {
		kr, err := memberlist.NewKeyring(nil, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Keyring = kr
	}
	g, err := StartGossip(cfg, Meta{NodeID: id, Name: "name-" + id, RaftAddr: host + ":1", HTTPAddr: host + ":2", Worker: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown() })
	return g
}

// waitHealth waits, woken by g's change notifications (and a look every
// probe interval for suspicions, which memberlist does not notify), until g
// sees id with the health want.
func waitHealth(t *testing.T, g *Gossip, id, want string, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	look := time.NewTicker(DefaultGossipConfig().ProbeInterval)
	defer look.Stop()
	for {
		if st, ok := g.States()[id]; ok && st.Health == want {
			return
		}
		select {
		case <-g.Changed():
		case <-look.C:
		case <-deadline.C:
			t.Fatalf("%s never saw %s %s (states %v)", g.Addr(), id, want, g.States())
		}
	}
}

// Two members with the cluster's key and label see each other alive, with
// their metadata; a member without the key, or of another cluster, is never
// seen; a member that stops is seen dead in about a second.
func TestGossipMembersKeysAndDeath(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a := startGossip(t, "127.0.7.1", "a", key, "pio/c1")
	b := startGossip(t, "127.0.7.2", "b", key, "pio/c1")
	if _, err := b.Join([]string{a.Addr()}); err != nil {
		t.Fatalf("join: %v", err)
	}
	waitHealth(t, a, "b", HealthAlive, 5*time.Second)
	waitHealth(t, b, "a", HealthAlive, 5*time.Second)
	if m := a.States()["b"].Meta; m.Name != "name-b" || m.RaftAddr != "127.0.7.2:1" {
		t.Fatalf("a sees b's metadata as %+v", m)
	}

	noKey := startGossip(t, "127.0.7.3", "nokey", nil, "pio/c1")
	otherKey := startGossip(t, "127.0.7.4", "otherkey", bytes.Repeat([]byte{9}, 32), "pio/c1")
	otherLabel := startGossip(t, "127.0.7.5", "otherlabel", key, "pio/c2")
	for _, s := range []*Gossip{noKey, otherKey, otherLabel} {
		if n, err := s.Join([]string{a.Addr()}); err == nil && n > 0 {
			t.Errorf("%s joined the cluster's gossip (%d)", s.Addr(), n)
		}
	}

	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitHealth(t, a, "b", HealthDead, 10*time.Second)
	t.Logf("a saw b dead %s after it stopped", time.Since(start).Round(time.Millisecond))
	for _, id := range []string{"nokey", "otherkey", "otherlabel"} {
		if st, ok := a.States()[id]; ok {
			t.Errorf("a knows the stranger %s: %+v", id, st)
		}
	}
	if n := len(a.States()); n != 2 {
		t.Errorf("a knows %d members, want 2 (itself, and b dead): %v", n, a.States())
	}
}
