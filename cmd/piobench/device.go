package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A node's "SD card": with devices on, each node's data dir is an ext4 file
// system of its own, on a loop device, and what the node writes is what that
// device is asked to write (sectors written, the file system's journal
// included), as a card would count it. /proc/PID/io write_bytes is not that
// figure on kernels whose page cache uses large folios (ext4 on Linux ≥ 6.16):
// a 4 KB write into a file that was read through mmap, as bolt reads, counts
// the whole folio, up to hundreds of KB.

// device is a node's own file system on a loop device.
type device struct {
	image, dir, loop string
}

// newDevice makes a sparse ext4 image of sizeGB and mounts it on dir.
func newDevice(dir string, sizeGB int) (*device, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("a device of its own per node needs root (mount)")
	}
	d := &device{image: dir + ".img", dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.Create(d.image)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(int64(sizeGB) << 30)
	f.Close()
	if err != nil {
		return nil, err
	}
	for _, c := range [][]string{{"mkfs.ext4", "-q", "-F", d.image}, {"mount", "-o", "loop", d.image, dir}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	out, err := exec.Command("losetup", "-j", d.image).Output()
	if err != nil {
		d.close()
		return nil, fmt.Errorf("losetup -j %s: %v", d.image, err)
	}
	dev, _, _ := strings.Cut(string(out), ":")
	d.loop = filepath.Base(strings.TrimSpace(dev))
	if d.loop == "" || d.loop == "." {
		d.close()
		return nil, fmt.Errorf("no loop device for %s", d.image)
	}
	return d, nil
}

// written syncs the file system and returns the bytes its device was asked to write.
func (d *device) written() (int64, error) {
	if fd, err := unix.Open(d.dir, unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		_ = unix.Syncfs(fd)
		unix.Close(fd)
	}
	b, err := os.ReadFile("/sys/block/" + d.loop + "/stat")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 7 {
		return 0, fmt.Errorf("/sys/block/%s/stat: %q", d.loop, b)
	}
	sectors, err := strconv.ParseInt(f[6], 10, 64)
	return sectors * 512, err
}

// close unmounts the file system (its loop device goes with it) and removes the image.
func (d *device) close() {
	_ = exec.Command("umount", d.dir).Run()
	os.Remove(d.image)
}
