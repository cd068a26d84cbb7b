package export

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// The export dir holds a node's exports: export_YYYYMMDDHHMMSS.zip files
// (UTC, as Pioreactor's), a suffix when two are made within a second. It is
// kept bounded (Prune), and no export starts or goes on on a disk short of
// space (CheckFreeSpace).

const (
	// MinFree is the free space, in bytes, an export needs on the export dir's disk, to start and to go on.
	MinFree = 64 << 20
	// Kept is how many of the newest exports Prune keeps.
	Kept = 5
	// MaxAge is the age beyond which Prune removes an export.
	MaxAge = 24 * time.Hour
)

var (
	// nameRE is the name of an export file.
	nameRE = regexp.MustCompile(`^export_\d{14}(_\d+)?\.zip$`)
	// tmpRE is the name of an export being written.
	tmpRE = regexp.MustCompile(`^\.export_\d{14}(_\d+)?\.zip\.tmp$`)
)

// ValidName reports whether name is the name of an export file
// (export_YYYYMMDDHHMMSS.zip, or with a _N suffix); downloads serve no other.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// MakeDir makes the export dir dir, and its parents, if need be.
func MakeDir(dir string) error { return os.MkdirAll(dir, 0o750) }

// FileName is the name of a new export made at now (UTC, as Pioreactor's),
// with a suffix when that name is taken in dir.
func FileName(dir string, now time.Time) string {
	base := "export_" + now.UTC().Format(stampLayout)
	name := base + ".zip"
	for i := 1; ; i++ {
		if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, os.ErrNotExist) {
			return name
		}
		name = base + "_" + strconv.Itoa(i) + ".zip"
	}
}

// Prune keeps the export dir bounded: it removes what an export left half
// written (call it only while none runs), the exports older than MaxAge,
// and the oldest beyond Kept. Other files are left alone; failures are logged.
func Prune(dir string, now time.Time, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		log.Warn("export dir not read", "dir", dir, "error", err)
		return
	}
	type file struct {
		name string
		mod  time.Time
	}
	var zips []file
	remove := func(name string) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("old export not removed", "file", name, "error", err)
		}
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		switch {
		case tmpRE.MatchString(e.Name()):
			remove(e.Name())
		case nameRE.MatchString(e.Name()):
			if now.Sub(info.ModTime()) > MaxAge {
				remove(e.Name())
				continue
			}
			zips = append(zips, file{e.Name(), info.ModTime()})
		}
	}
	sort.Slice(zips, func(i, j int) bool {
		if !zips[i].mod.Equal(zips[j].mod) {
			return zips[i].mod.After(zips[j].mod)
		}
		return zips[i].name > zips[j].name
	})
	for i := Kept; i < len(zips); i++ {
		remove(zips[i].name)
	}
}

// ErrNoSpace is matched (errors.Is) by the *SpaceError of CheckFreeSpace:
// the disk of the export dir is short of free space.
var ErrNoSpace = errors.New("not enough free space to export")

// SpaceError says that the disk of Dir has Free bytes free where an export needs Need.
type SpaceError struct {
	Dir        string
	Need, Free uint64
}

// Error says how much space the export needs and how much is free.
func (e *SpaceError) Error() string {
	return fmt.Sprintf("%v: an export needs %d MB free on the disk of %s; %d MB are free", ErrNoSpace, e.Need>>20, e.Dir, e.Free>>20)
}

// Is reports whether target is ErrNoSpace.
func (e *SpaceError) Is(target error) bool { return target == ErrNoSpace }

// CheckFreeSpace returns a *SpaceError when the disk of dir has less than
// need bytes free, and another error when its free space cannot be read.
func CheckFreeSpace(dir string, need uint64) error {
	free, err := freeSpace(dir)
	if err != nil {
		return fmt.Errorf("free space of the export dir %s: %w", dir, err)
	}
	if free < need {
		return &SpaceError{Dir: dir, Need: need, Free: free}
	}
	return nil
}

// freeSpace returns the bytes an unprivileged user may still write on the disk of dir.
func freeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
