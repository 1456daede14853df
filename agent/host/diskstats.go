package host

import (
	"fmt"
	"regexp"
)

// diskStat is one line of /proc/diskstats: the device name and its 11 to 17
// counters (the count grew with kernels 4.18 and 5.5).
type diskStat struct {
	device       string
	major, minor string
	n            int // number of counters present
	v            [17]uint64
}

// diskMetrics names node_exporter's series for each /proc/diskstats counter
// and the factor that turns it into base units: sectors are 512 bytes
// whatever the device's sector size, times are milliseconds.
var diskMetrics = [17]struct {
	name  string
	scale float64
}{
	{"node_disk_reads_completed_total", 1},
	{"node_disk_reads_merged_total", 1},
	{"node_disk_read_bytes_total", 512},
	{"node_disk_read_time_seconds_total", 0.001},
	{"node_disk_writes_completed_total", 1},
	{"node_disk_writes_merged_total", 1},
	{"node_disk_written_bytes_total", 512},
	{"node_disk_write_time_seconds_total", 0.001},
	{"node_disk_io_now", 1},
	{"node_disk_io_time_seconds_total", 0.001},
	{"node_disk_io_time_weighted_seconds_total", 0.001},
	{"node_disk_discards_completed_total", 1},
	{"node_disk_discards_merged_total", 1},
	{"node_disk_discarded_sectors_total", 1},
	{"node_disk_discard_time_seconds_total", 0.001},
	{"node_disk_flush_requests_total", 1},
	{"node_disk_flush_requests_time_seconds_total", 0.001},
}

// parseDiskstats parses /proc/diskstats into dst[:0] and returns it.
func parseDiskstats(data []byte, dst []diskStat, in *interner) ([]diskStat, error) {
	dst = dst[:0]
	var arr [21][]byte
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) == 0 {
			continue
		}
		if len(f) < 3+11 {
			return dst, fmt.Errorf("parse /proc/diskstats line %q: want major minor name and at least 11 counters, got %d fields", line, len(f))
		}
		var d diskStat
		if _, ok := parseUint(f[0]); !ok {
			return dst, fmt.Errorf("parse /proc/diskstats line %q: bad major number %q", line, f[0])
		}
		if _, ok := parseUint(f[1]); !ok {
			return dst, fmt.Errorf("parse /proc/diskstats line %q: bad minor number %q", line, f[1])
		}
		d.major, d.minor = in.get(f[0]), in.get(f[1])
		d.device = in.get(f[2])
		for i, b := range f[3:min(len(f), 3+17)] {
			v, ok := parseUint(b)
			if !ok {
				return dst, fmt.Errorf("parse /proc/diskstats line %q: bad counter %q", line, b)
			}
			d.v[i] = v
			d.n = i + 1
		}
		dst = append(dst, d)
	}
	return dst, nil
}

// defaultDiskExclude is node_exporter's --collector.diskstats.device-exclude
// default: RAM disks, loop devices, floppies and partitions.
const defaultDiskExclude = `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`

// deviceFilter caches which devices a regexp excludes: the set of devices is
// stable, so the regexp runs once per device, not once per cycle.
type deviceFilter struct {
	re   *regexp.Regexp
	seen map[string]bool // device -> excluded
}

func (f *deviceFilter) excluded(dev string) bool {
	if x, ok := f.seen[dev]; ok {
		return x
	}
	if f.seen == nil || len(f.seen) >= maxInterned {
		f.seen = make(map[string]bool)
	}
	x := f.re.MatchString(dev)
	f.seen[dev] = x
	return x
}

func (c *Collector) collectDiskstats() error {
	data, err := c.read(c.pDiskstats)
	if err != nil {
		return err
	}
	c.disks, err = parseDiskstats(data, c.disks, &c.names)
	if err != nil {
		return err
	}
	c.emitDiskstats(c.disks)
	return nil
}

// emitDiskstats appends, for every device the filter keeps, node_disk_info
// (with the udev properties and the rotational flag), the counters, and the
// udev-derived filesystem, device-mapper and ATA series, as node_exporter's
// diskstats collector does.
func (c *Collector) emitDiskstats(ds []diskStat) {
	c.udev.seen++
	for i := range ds {
		d := &ds[i]
		if c.diskFilter.excluded(d.device) {
			continue
		}
		u := c.udevInfo(d)
		rot := "0"
		if data, err := c.read(c.path("/sys/block/", d.device, "/queue/rotational")); err == nil {
			if v, ok := parseSysfsUint(data); ok && v == 1 {
				rot = "1"
			}
		}
		dev := l("device", d.device)
		c.add("node_disk_info", 1, dev, l("major", d.major), l("minor", d.minor), l("model", u.get(udevIDModel)),
			l("path", u.get(udevIDPath)), l("revision", u.get(udevIDRevision)), l("rotational", rot),
			l("serial", u.serial()), l("wwn", u.get(udevIDWWN)))
		for j := 0; j < d.n; j++ {
			m := &diskMetrics[j]
			c.add(m.name, float64(d.v[j])*m.scale, dev)
		}
		if t := u.get(udevIDFSType); t != "" {
			c.add("node_disk_filesystem_info", 1, dev, l("type", t), l("usage", u.get(udevIDFSUsage)),
				l("uuid", u.get(udevIDFSUUID)), l("version", u.get(udevIDFSVersion)))
		}
		if name := u.get(udevDMName); name != "" {
			c.add("node_disk_device_mapper_info", 1, dev, l("lv_layer", u.get(udevDMLVLayer)), l("lv_name", u.get(udevDMLVName)),
				l("name", name), l("uuid", u.get(udevDMUUID)), l("vg_name", u.get(udevDMVGName)))
		}
		if u.get(udevIDATA) != "" {
			for _, a := range udevATA {
				if v, ok := u.float(a.key); ok {
					c.add(a.name, v, dev)
				}
			}
		}
	}
	c.udev.evict()
}
