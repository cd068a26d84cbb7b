package export

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"
)

// CheckFreeSpace tells a disk short of space (a *SpaceError, ErrNoSpace)
// from a dir whose free space cannot be read.
func TestCheckFreeSpace(t *testing.T) {
	dir := t.TempDir()
	if err := CheckFreeSpace(dir, 1); err != nil {
		t.Fatalf("1 byte: %v", err)
	}
	var se *SpaceError
	if err := CheckFreeSpace(dir, math.MaxUint64); !errors.As(err, &se) || !errors.Is(err, ErrNoSpace) || se.Dir != dir || se.Need != math.MaxUint64 || se.Free == 0 {
		t.Fatalf("more than any disk: %v", err)
	}
	if err := CheckFreeSpace(filepath.Join(dir, "nosuch"), 1); err == nil || errors.Is(err, ErrNoSpace) {
		t.Fatalf("a missing dir: %v", err)
	}
}

// The export dir keeps the 5 newest exports of the last 24 hours, and no
// half-written one; it leaves other files alone.
func TestPruneExports(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	touch := func(name string, age time.Duration) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 7; i++ {
		touch("export_2026112512000"+string(rune('0'+i))+".zip", time.Duration(7-i)*time.Minute)
	}
	touch("export_20261124110000.zip", 25*time.Hour)
	touch(".export_20261125130000.zip.tmp", time.Minute)
	touch("notes.txt", 48*time.Hour)
	Prune(dir, now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	sort.Strings(left)
	want := []string{"export_20261125120002.zip", "export_20261125120003.zip", "export_20261125120004.zip", "export_20261125120005.zip", "export_20261125120006.zip", "notes.txt"}
	if !reflect.DeepEqual(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}

func TestExportFileName(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 11, 25, 13, 4, 5, 0, time.FixedZone("x", 3600))
	if got := FileName(dir, at); got != "export_20261125120405.zip" {
		t.Fatalf("%s", got)
	}
	for _, n := range []string{"export_20261125120405.zip", "export_20261125120405_1.zip"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := FileName(dir, at); got != "export_20261125120405_2.zip" || !ValidName(got) {
		t.Fatalf("%s", got)
	}
}
