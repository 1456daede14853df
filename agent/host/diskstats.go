package host

import (
	"fmt"
	"regexp"
)

// diskStat is one line of /proc/diskstats: the device name and its 11 to 17
// counters (the count grew with kernels 4.18 and 5.5).
type diskStat struct {
	device string
	n      int // number of counters present
	v      [17]uint64
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

func (c *Collector) emitDiskstats(ds []diskStat) {
	for i := range ds {
		d := &ds[i]
		if c.diskFilter.excluded(d.device) {
			continue
		}
		for j := 0; j < d.n; j++ {
			m := &diskMetrics[j]
			c.add(m.name, float64(d.v[j])*m.scale, l("device", d.device))
		}
	}
}
