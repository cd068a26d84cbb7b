package system

import (
	"errors"
	"fmt"
	"github.com/pioreactor/pio/agent"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The data dir and everything in it are private to pio's user: a node
// started through startAgent, as `pio serve` does, on a data dir left
// readable by an older version, tightens it; then everything it writes
// (Raft's log and snapshots, the readings store, the node ID, the lock) is
// 0600, every directory 0700.
func TestDataDirPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "private")
	old := filepath.Join(dir, "raft.discarded-1")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(dir, "notes"), filepath.Join(old, "raft.db")} {
		if err := os.WriteFile(f, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, mode := range map[string]fs.FileMode{dir: 0o755, old: 0o755, filepath.Join(dir, "notes"): 0o644, filepath.Join(old, "raft.db"): 0o644} {
		if err := os.Chmod(p, mode); err != nil { // whatever the test's umask
			t.Fatal(err)
		}
	}

	n := startNode(t, "private", withDataDir(dir), func(c *agent.Config) {
		c.SnapshotThreshold, c.SnapshotInterval, c.TrailingLogs = 8, 50*time.Millisecond, 2
	})
	waitCluster(t, []*testNode{n}, 1, 1)
	for i := 0; i < 20; i++ {
		if code, _ := createExperiment(t, n, fmt.Sprintf("p-%d", i)); code != http.StatusCreated {
			t.Fatal(code)
		}
	}
	eventually(t, 10*time.Second, "a snapshot on disk", func() error {
		m, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
		if len(m) == 0 {
			return fmt.Errorf("no snapshot yet")
		}
		return nil
	})
	n.stop() // nothing is written any more: the walk sees a still data dir

	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		seen[filepath.Base(path)] = true
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			t.Errorf("%s is a symbolic link", rel)
		case info.IsDir() && info.Mode().Perm() != 0o700:
			t.Errorf("directory %s is %v, want 0700", rel, info.Mode().Perm())
		case !info.IsDir() && info.Mode().Perm() != 0o600:
			t.Errorf("file %s is %v, want 0600", rel, info.Mode().Perm())
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, want := range []string{"node-id", "lock", "readings.db", "raft.db", "snapshots", "state.bin", "meta.json", "notes"} {
		if !seen[want] {
			t.Errorf("%s not found in the data dir (seen %v)", want, seen)
		}
	}
}
