package host

import (
	"bytes"
	"slices"
	"strconv"
)

// clocksourceState is the clock sources of
// /sys/devices/system/clocksource/clocksource<N>, listed again every cycle.
type clocksourceState struct {
	dirs []int // the N of every clocksource<N>, sorted
}

// parseClocksources splits available_clocksource ("tsc kvm-clock \n") into
// the names it lists, appending them to dst[:0] interned in in.
func parseClocksources(data []byte, dst []string, in *interner) []string {
	dst = dst[:0]
	var arr [32][]byte
	for _, f := range fields(bytes.TrimSpace(data), arr[:0]) {
		dst = append(dst, in.get(f))
	}
	return dst
}

// collectTime reports the time, the zone offset and the clock sources, as
// node_exporter's time collector does.
func (c *Collector) collectTime() error {
	c.add("node_time_seconds", float64(c.now.UnixNano())/1e9)
	zone, offset := c.now.Zone()
	c.add("node_time_zone_offset_seconds", float64(offset), l("time_zone", zone))

	s := &c.clocks
	s.dirs = s.dirs[:0]
	var err error
	c.buf2, err = readDir(c.path("/sys/devices/system/clocksource"), c.buf2, func(records []byte) {
		_ = forEachDirent(records, func(name []byte, _ byte) {
			if n, ok := bytes.CutPrefix(name, []byte("clocksource")); ok {
				if i, ok := parseUint(n); ok && i < 1<<16 {
					s.dirs = append(s.dirs, int(i))
				}
			}
		})
	})
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	// node_exporter globs clocksource[0-9]*: lexical order; its device
	// label is the position in that order.
	slices.SortFunc(s.dirs, func(a, b int) int {
		var x, y [8]byte
		return bytes.Compare(strconv.AppendInt(x[:0], int64(a), 10), strconv.AppendInt(y[:0], int64(b), 10))
	})
	var avail [32]string
	for i, n := range s.dirs {
		var nb [8]byte
		num := c.names.get(strconv.AppendInt(nb[:0], int64(n), 10))
		dir := c.path("/sys/devices/system/clocksource/clocksource", num, "/available_clocksource")
		data, err := c.read(dir)
		if err != nil {
			return err
		}
		names := parseClocksources(data, avail[:0], &c.names)
		data, err = c.read(c.path("/sys/devices/system/clocksource/clocksource", num, "/current_clocksource"))
		if err != nil {
			return err
		}
		current := c.names.get(bytes.TrimSpace(data))
		dev := c.names.get(strconv.AppendInt(nb[:0], int64(i), 10))
		for _, name := range names {
			c.add("node_time_clocksource_available_info", 1, l("clocksource", name), l("device", dev))
		}
		c.add("node_time_clocksource_current_info", 1, l("clocksource", current), l("device", dev))
	}
	return nil
}
