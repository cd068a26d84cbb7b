package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/google/uuid"
)

// pioBinary is built once for the chaos test.
var pioBinary string

func TestMain(m *testing.M) {
	if os.Getenv(chaosNetnsEnv) != "" && os.Getenv("PIO_TEST_BIN") != "" {
		pioBinary = os.Getenv("PIO_TEST_BIN") // the outer run built it
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "pio-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pioBinary = filepath.Join(dir, "pio")
	if out, err := exec.Command("go", "build", "-o", pioBinary, "../pio").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build pio: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestChaosShort is the short version of `make chaos` that `make test` runs:
// a few fault schedules against five processes, inside a network namespace
// when the test may make one (root, ip, iptables) so that partitions are among
// the faults. Every history must be linearizable, no acknowledged write lost,
// every node's state identical after healing.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if os.Getenv(chaosNetnsEnv) == "" && os.Geteuid() == 0 {
		if _, err := exec.LookPath("iptables"); err == nil {
			ns := "piochaos-" + uuid.NewString()[:8]
			if exec.Command("ip", "netns", "add", ns).Run() == nil {
				defer exec.Command("ip", "netns", "del", ns).Run()
				if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
					t.Fatalf("lo up: %v %s", err, out)
				}
				cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestChaosShort$", "-test.v", "-test.count=1", "-test.timeout=600s")
				cmd.Env = append(os.Environ(), chaosNetnsEnv+"="+ns, "PIO_TEST_BIN="+pioBinary)
				out, err := cmd.CombinedOutput()
				for _, line := range strings.Split(string(out), "\n") {
					if strings.Contains(line, "chaos_test.go") || strings.Contains(line, "chaos schedule") {
						t.Log(strings.TrimSpace(line))
					}
				}
				if err != nil || !strings.Contains(string(out), "--- PASS: TestChaosShort") {
					t.Fatalf("in network namespace %s: %v\n%s", ns, err, out)
				}
				return
			}
		}
	}
	b := &bench{pio: pioBinary}
	if err := b.init(); err != nil {
		t.Fatal(err)
	}
	defer b.cleanup()
	res, err := b.chaos(3, 3, 1000, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tbl := res.(map[string]any)
	t.Logf("chaos: %v", tbl)
	if tbl["linearizability_violations"] != 0 || tbl["lost_acknowledged_writes"] != 0 || tbl["diverged"] != 0 {
		t.Fatalf("chaos found problems (reproduce with: go run ./cmd/piobench -chaos 1 -seed SEED): %v", tbl)
	}
}

func op(client int, call, ret int64, in chaosInput, out chaosOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func TestLostAcked(t *testing.T) {
	k := "k"
	created := chaosOutput{Result: "created"}
	// Overlapping create and delete: ambiguous, not counted whatever the final read says.
	h := []porcupine.Operation{
		op(1, 10, 30, chaosInput{Op: "create", Key: k}, created),
		op(2, 12, 40, chaosInput{Op: "delete", Key: k}, chaosOutput{Result: "deleted"}),
		op(99, 100, 110, chaosInput{Op: "read", Key: k}, chaosOutput{Result: "absent"}),
	}
	if n := lostAcked(h); n != 0 {
		t.Fatalf("ambiguous history counted %d lost", n)
	}
	// An acknowledged create alone before the final read, which says absent: lost.
	h = []porcupine.Operation{
		op(1, 10, 30, chaosInput{Op: "create", Key: k}, created),
		op(99, 100, 110, chaosInput{Op: "read", Key: k}, chaosOutput{Result: "absent"}),
	}
	if n := lostAcked(h); n != 1 {
		t.Fatalf("lost create counted %d", n)
	}
	if porcupine.CheckOperations(chaosModel.ToModel(), h) {
		t.Fatal("the model accepts a lost create")
	}
	// An unknown delete after it makes absent possible: not lost, and linearizable.
	h = append(h[:1], op(3, 40, 1<<62-1, chaosInput{Op: "delete", Key: k}, chaosOutput{Unknown: true}), h[1])
	if n := lostAcked(h); n != 0 || !porcupine.CheckOperations(chaosModel.ToModel(), h) {
		t.Fatalf("unknown delete: lost %d", n)
	}
}
