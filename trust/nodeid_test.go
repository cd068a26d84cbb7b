package trust

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNodeIDIsStable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := LoadOrCreateNodeID(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateNodeID(dir)
	if err != nil || a != b {
		t.Fatalf("second load: %q %v, want %q", b, err, a)
	}
	// The data dir and the node ID are private to this user.
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, nodeIDFile): 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Fatalf("%s is %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	os.WriteFile(filepath.Join(dir, nodeIDFile), []byte("garbage\n"), 0o644)
	if _, err := LoadOrCreateNodeID(dir); err == nil {
		t.Fatal("a damaged node-id file must be an error, not a new identity")
	}
}
