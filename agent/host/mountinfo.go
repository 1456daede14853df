package host

import (
	"bytes"
	"fmt"
	"regexp"
)

// mount is one line of /proc/<pid>/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// major:minor is field 3, mountPoint field 5, options field 6 (per-mount
// options), fsType, device and the superblock options follow the "-"
// separator. A filesystem is read-only, as node_exporter judges it, when the
// mount or the superblock options hold "ro" or the superblock
// "emergency_ro".
type mount struct {
	device, mountPoint, fsType string
	major, minor               string
	readOnly                   bool
}

// parseMountinfo parses mountinfo into dst[:0] and returns it. It copies
// every string: the result outlives the read buffer.
func parseMountinfo(data []byte, dst []mount) ([]mount, error) {
	dst = dst[:0]
	var arr [32][]byte
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if string(f[i]) == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			return dst, fmt.Errorf("parse mountinfo line %q: want 6+ fields, \"-\", fstype and source", line)
		}
		major, minor, ok := bytes.Cut(f[2], []byte(":"))
		_, ok1 := parseUint(major)
		_, ok2 := parseUint(minor)
		if !ok || !ok1 || !ok2 {
			return dst, fmt.Errorf("parse mountinfo line %q: bad major:minor %q", line, f[2])
		}
		ro := hasOption(f[5], "ro")
		if sep+3 < len(f) {
			ro = ro || hasOption(f[sep+3], "ro") || hasOption(f[sep+3], "emergency_ro")
		}
		dst = append(dst, mount{
			mountPoint: unescapeMount(f[4]),
			fsType:     string(f[sep+1]),
			device:     unescapeMount(f[sep+2]),
			major:      string(major),
			minor:      string(minor),
			readOnly:   ro,
		})
	}
	return dst, nil
}

// hasOption reports whether the comma-separated options hold opt.
func hasOption(opts []byte, opt string) bool {
	for len(opts) > 0 {
		var o []byte
		if i := bytes.IndexByte(opts, ','); i >= 0 {
			o, opts = opts[:i], opts[i+1:]
		} else {
			o, opts = opts, nil
		}
		if string(o) == opt {
			return true
		}
	}
	return false
}

// unescapeMount undoes the kernel's octal escapes of space, tab, newline
// and backslash in mountinfo paths ("\040" for a space).
func unescapeMount(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) && isOctal(b[i+1]) && isOctal(b[i+2]) && isOctal(b[i+3]) {
			out = append(out, (b[i+1]-'0')<<6|(b[i+2]-'0')<<3|(b[i+3]-'0'))
			i += 3
			continue
		}
		out = append(out, b[i])
	}
	return string(out)
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// defaultMountPointsExclude is node_exporter's default
// --collector.filesystem.mount-points-exclude plus the per-container
// mounts of kubelet, containerd and docker, which are noise on a host
// dashboard.
const defaultMountPointsExclude = `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+|var/lib/kubelet/.+|run/containerd/.+|run/docker/.+|run/netns/.+)($|/)`

// defaultFSTypesExclude is node_exporter's default
// --collector.filesystem.fs-types-exclude: pseudo and read-only image
// filesystems.
const defaultFSTypesExclude = `^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$`

// filterMounts keeps the mounts that are real filesystems, in place, and
// returns them: excluded mount points and types are dropped, and of several
// mounts on one mount point only the last (the visible one) stays.
func filterMounts(ms []mount, mpExclude, fsExclude *regexp.Regexp) []mount {
	out := ms[:0]
	for _, m := range ms {
		if mpExclude.MatchString(m.mountPoint) || fsExclude.MatchString(m.fsType) {
			continue
		}
		replaced := false
		for i := range out {
			if out[i].mountPoint == m.mountPoint {
				out[i] = m
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, m)
		}
	}
	clear(ms[len(out):])
	return out
}
