package system

import (
	"fmt"
	"github.com/pioreactor/pio/agent"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPowerLossDuringHeavyWrites kills -9 a single node (the strictest case:
// no other copy) in the middle of concurrent writes, three times, and checks
// after each restart that every acknowledged write is there.
func TestPowerLossDuringHeavyWrites(t *testing.T) {
	p := startProc(t, "power")
	acked := map[string]bool{}
	var mu sync.Mutex
	for round := 0; round < 3; round++ {
		eventually(t, 10*time.Second, "leader", func() error {
			if !p.isLeader() {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					if code, err := postExperiment(p.c, name); err == nil && code == http.StatusCreated {
						mu.Lock()
						acked[name] = true
						mu.Unlock()
					}
				}
			}(w)
		}
		time.Sleep(400 * time.Millisecond)
		p.kill() // power cut in the middle of the writes
		close(stop)
		wg.Wait()
		p.start()
		eventually(t, 15*time.Second, "every acknowledged write after the power cut", func() error {
			mu.Lock()
			defer mu.Unlock()
			return holdsAll(p, acked)
		})
	}
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged: the test did not write much", len(acked))
	}
	t.Logf("%d acknowledged writes survived 3 power cuts", len(acked))
}

// damagedStart starts a node on a data dir that was damaged by damage, and
// expects a clear error naming what to do, not a panic or a silent empty state.
func damagedStart(t *testing.T, damage func(dataDir string), want ...string) {
	t.Helper()
	n := startNode(t, "fragile", func(c *agent.Config) {
		c.SnapshotThreshold, c.SnapshotInterval, c.TrailingLogs = 16, 50*time.Millisecond, 4
	})
	waitCluster(t, []*testNode{n}, 1, 1)
	for i := 0; i < 40; i++ {
		createExperiment(t, n, fmt.Sprintf("x%d", i))
	}
	eventually(t, 10*time.Second, "a snapshot", func() error {
		m, _ := filepath.Glob(filepath.Join(n.cfg.DataDir, "raft", "snapshots", "*", "state.bin"))
		if len(m) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	cfg := n.restartConfig()
	n.stop()
	damage(cfg.DataDir)
	_, err := agent.StartRuntime(cfg, discardLogger())
	if err == nil {
		t.Fatal("a damaged data dir started without an error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not mention %q", err, w)
		}
	}
}

func TestTruncatedRaftLogIsAClearError(t *testing.T) {
	damagedStart(t, func(dir string) {
		p := filepath.Join(dir, "raft", "raft.db")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, fi.Size()/3); err != nil {
			t.Fatal(err)
		}
	}, "raft", "restore the data dir from a backup or remove it")
}

func TestCorruptRaftLogHeaderIsAClearError(t *testing.T) {
	damagedStart(t, func(dir string) {
		f, err := os.OpenFile(filepath.Join(dir, "raft", "raft.db"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// Both bolt meta pages (4 KiB each) get garbage.
		garbage := []byte(strings.Repeat("\xde\xad\xbe\xef", 2048))
		if _, err := f.WriteAt(garbage, 16); err != nil {
			t.Fatal(err)
		}
	}, "raft", "restore the data dir from a backup or remove it")
}

func TestCorruptSnapshotIsAClearError(t *testing.T) {
	damagedStart(t, func(dir string) {
		m, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
		for _, p := range m {
			b, _ := os.ReadFile(p)
			for i := range b {
				if i%7 == 0 {
					b[i] ^= 0xff
				}
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}, "snapshot")
}

// TestDiskFull puts a node's data dir on a small tmpfs and fills it: writes
// are refused with a clear 507, nothing acknowledged is lost, and writing works
// again once space is freed.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	n := startNode(t, "full", withDataDir(filepath.Join(dir, "data")), withGather(10*time.Millisecond))
	waitCluster(t, []*testNode{n}, 1, 1)
	for i := 0; i < 20; i++ {
		if code, _ := createExperiment(t, n, fmt.Sprintf("before-%d", i)); code != http.StatusCreated {
			t.Fatal(code)
		}
	}
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	shipOwn(t, n, n, "before-0", t0, 50)
	// Fill the disk.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	var code int
	var body string
	eventually(t, 20*time.Second, "a write refused for lack of space", func() error {
		req, _ := http.NewRequest(http.MethodPost, n.c.Base+"/api/experiments", strings.NewReader(`{"experiment":"big-`+strings.Repeat("x", 150)+fmt.Sprint(time.Now().UnixNano())+`"}`))
		resp, err := n.c.HTTP.Do(req)
		if err != nil {
			return err
		}
		b := make([]byte, 2048)
		k, _ := resp.Body.Read(b)
		resp.Body.Close()
		code, body = resp.StatusCode, string(b[:k])
		if code == http.StatusCreated {
			return fmt.Errorf("still writing")
		}
		return nil
	})
	if code != http.StatusInsufficientStorage && code != http.StatusServiceUnavailable {
		t.Fatalf("disk full: %d %s", code, body)
	}
	if !strings.Contains(body, "remediation") {
		t.Fatalf("disk full without a remedy: %s", body)
	}
	os.Remove(filler)
	eventually(t, 20*time.Second, "writes work again", func() error {
		if code, _ := createExperiment(t, n, fmt.Sprintf("after-%d", time.Now().UnixNano())); code != http.StatusCreated {
			return fmt.Errorf("status %d", code)
		}
		return nil
	})
	shipOwn(t, n, n, "before-0", t0.Add(time.Minute), 50)
	check := func(n *testNode) {
		t.Helper()
		exps, err := experimentsOf(n)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			if !exps[fmt.Sprintf("before-%d", i)] {
				t.Fatalf("lost before-%d after the disk filled up", i)
			}
		}
		if got := n.a.Node().FSM().ReadingsCount(); got != 100 {
			t.Fatalf("%d readings after the disk filled up, want the 100 acknowledged", got)
		}
	}
	check(n)
	// The files are whole: the node starts again on them with everything.
	cfg := n.restartConfig()
	n.stop()
	back := startConfigured(t, cfg)
	waitCluster(t, []*testNode{back}, 1, 1)
	check(back)
}
