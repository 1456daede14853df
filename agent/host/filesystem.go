package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// fsMount is a mount worth reporting, with the path statfs is called on.
type fsMount struct {
	mount
	path    []byte // Root + mountPoint, NUL-terminated
	network bool   // statfs may hang: run it with a timeout
}

// collectFilesystems reports every real filesystem of the host's mount
// table (/proc/1/mountinfo, which a container with the host's PID namespace
// sees as the host's; /proc/self/mountinfo when that is not readable). The
// table is parsed again only when its bytes changed. A filesystem whose
// statfs fails gets node_filesystem_device_error=1 and no other series; that
// is not an error of the collector.
func (c *Collector) collectFilesystems() error {
	path := c.pMount1
	if c.useMountSelf {
		path = c.pMountSelf
	}
	data, err := c.read(path)
	if err != nil && !c.useMountSelf {
		c.useMountSelf = true
		data, err = c.read(c.pMountSelf)
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(data, c.mountRaw) || c.mountRaw == nil {
		ms, err := parseMountinfo(data, nil)
		if err != nil {
			return err
		}
		ms = filterMounts(ms, c.mpExclude, c.fsExclude)
		root := strings.TrimSuffix(c.opts.Root, "/")
		mounts := make([]fsMount, len(ms))
		for i, m := range ms {
			mounts[i] = fsMount{mount: m, path: append([]byte(root+m.mountPoint), 0), network: isNetworkFS(m.fsType)}
		}
		c.mounts = mounts
		c.mountRaw = append(c.mountRaw[:0], data...)
	}
	for i := range c.mounts {
		m := &c.mounts[i]
		var st fsStat
		err := c.statfs(m, &st)
		dev, fs, mp := l("device", m.device), l("fstype", m.fsType), l("mountpoint", m.mountPoint)
		ro := 0.0
		if m.readOnly {
			ro = 1
		}
		if err != nil {
			// node_exporter's device_error label holds the reason.
			de := l("device_error", deviceErrorText(err))
			c.add("node_filesystem_device_error", 1, dev, de, fs, mp)
			c.add("node_filesystem_readonly", ro, dev, de, fs, mp)
			continue
		}
		c.add("node_filesystem_device_error", 0, dev, fs, mp)
		c.add("node_filesystem_readonly", ro, dev, fs, mp)
		c.add("node_filesystem_size_bytes", st.size, dev, fs, mp)
		c.add("node_filesystem_free_bytes", st.free, dev, fs, mp)
		c.add("node_filesystem_avail_bytes", st.avail, dev, fs, mp)
		c.add("node_filesystem_files", st.files, dev, fs, mp)
		c.add("node_filesystem_files_free", st.filesFree, dev, fs, mp)
		c.add("node_filesystem_mount_info", 1, dev, l("major", m.major), l("minor", m.minor), mp)
		// macOS only; node_exporter reports 0 on Linux, and so does this.
		c.add("node_filesystem_purgeable_bytes", 0, dev, fs, mp)
	}
	return nil
}

// errStatfsTimeout is the device_error of a network filesystem whose statfs
// did not answer in time (node_exporter's words).
var errStatfsTimeout = errors.New("mountpoint timeout")

// deviceErrorText is node_exporter's device_error label for a failed
// statfs: the system call's error text ("no such file or directory"), or
// "mountpoint timeout".
func deviceErrorText(err error) string {
	if errors.Is(err, errStatfsTimeout) {
		return errStatfsTimeout.Error()
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// statfs runs statfs(2) for m; on a network filesystem it gives up after
// Options.StatfsTimeout and skips the mount until the hung call returns,
// so a dead NFS server costs one goroutine, not a stuck agent.
func (c *Collector) statfs(m *fsMount, st *fsStat) error {
	if !m.network {
		return statfs(m.path, st)
	}
	mp := m.mountPoint
	c.stuckMu.Lock()
	stuck := c.stuck[mp]
	c.stuckMu.Unlock()
	if stuck {
		return fmt.Errorf("statfs %s: an earlier call is still hanging: %w", mp, errStatfsTimeout)
	}
	type result struct {
		st  fsStat
		err error
	}
	ch := make(chan result, 1)
	path := m.path // never modified once built
	go func() {
		var r result
		r.err = statfs(path, &r.st)
		ch <- r
	}()
	timer := time.NewTimer(c.opts.StatfsTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		*st = r.st
		return r.err
	case <-timer.C:
		c.stuckMu.Lock()
		c.stuck[mp] = true
		c.stuckMu.Unlock()
		go func() {
			<-ch
			c.stuckMu.Lock()
			delete(c.stuck, mp)
			c.stuckMu.Unlock()
		}()
		return fmt.Errorf("statfs %s: no answer within %s (network filesystem down?): %w", mp, c.opts.StatfsTimeout, errStatfsTimeout)
	}
}

// isNetworkFS reports whether statfs on a filesystem of type t may block on
// a remote server.
func isNetworkFS(t string) bool {
	switch t {
	case "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "afs", "lustre", "gpfs", "beegfs", "davfs", "sshfs":
		return true
	}
	return strings.HasPrefix(t, "fuse")
}
