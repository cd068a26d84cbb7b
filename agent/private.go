package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The data dir holds a full copy of the cluster database (the Raft log,
// snapshots, readings), so it and everything in it are private to pio's
// user: directories 0700, files 0600.

// privateUmask is the umask of `pio serve`. pio creates its own files 0600
// and directories 0700, but libraries do not: hashicorp/raft's file snapshot
// store makes its directories 0755 and state.bin and meta.json with
// os.Create, that is 0666 &^ umask. Only the umask keeps those private.
const privateUmask = 0o077

// SetPrivateUmask sets the process umask to privateUmask. The umask is
// process-wide: it applies to every file this process creates from now on.
func SetPrivateUmask() { syscall.Umask(privateUmask) }

// privateDataDir sets the umask, then creates the data dir (0700) or, if it
// exists, makes it 0700.
func privateDataDir(dir string) error {
	SetPrivateUmask()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w; choose a directory this user may write with --data-dir (or PIO_DATA_DIR)", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("make the data dir %s private: %w (is it owned by another user? `sudo chown -R $(id -un) %s`)", dir, err, dir)
	}
	return nil
}

// tightenDataDir makes everything under dir private, as a data dir made by an
// older version of pio (directories 0755, files 0644) is: directories 0700,
// files 0600. Symbolic links are left alone (chmod would follow them), and
// files that vanish during the walk are skipped. The data dir holds few
// files, so the walk is quick.
func tightenDataDir(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if info.Mode().Perm() == want {
			return nil
		}
		if err := os.Chmod(path, want); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("make %s private: %w (is it owned by another user? `sudo chown -R $(id -un) %s`)", path, err, dir)
		}
		return nil
	})
}
