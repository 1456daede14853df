package host

import (
	"fmt"
	"strconv"
)

// softnetStat is one line (one cpu) of /proc/net/softnet_stat.
type softnetStat struct {
	cpu                                     string
	processed, dropped, squeezed, collision uint32
	receivedRPS, flowLimit, backlogLen      uint32
}

// parseSoftnet parses /proc/net/softnet_stat into dst[:0] as
// prometheus/procfs does: columns 0-2 and 8 since Linux 2.6.23,
// received_rps (9) since 2.6.39, flow_limit_count (10) since 4.18, and
// backlog length and cpu number (11, 12) since 5.14; older kernels get
// the line number as cpu. cpu numbers are interned in in.
func parseSoftnet(data []byte, dst []softnetStat, in *interner) ([]softnetStat, error) {
	dst = dst[:0]
	var arr [16][]byte
	var col [13]uint32
	for i := 0; len(data) > 0; i++ {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) == 0 {
			i--
			continue
		}
		if len(f) < 9 {
			return dst, fmt.Errorf("parse /proc/net/softnet_stat line %d: %d columns; want at least 9", i+1, len(f))
		}
		n := min(len(f), len(col))
		for j := range n {
			v, ok := parseHex64(f[j])
			if !ok || v > 1<<32-1 {
				return dst, fmt.Errorf("parse /proc/net/softnet_stat line %d: bad hex number %q", i+1, f[j])
			}
			col[j] = uint32(v)
		}
		s := softnetStat{processed: col[0], dropped: col[1], squeezed: col[2], collision: col[8]}
		if n >= 10 {
			s.receivedRPS = col[9]
		}
		if n >= 11 {
			s.flowLimit = col[10]
		}
		cpu := uint32(i)
		if n >= 13 {
			s.backlogLen, cpu = col[11], col[12]
		}
		var b [10]byte
		s.cpu = in.get(strconv.AppendUint(b[:0], uint64(cpu), 10))
		dst = append(dst, s)
	}
	return dst, nil
}

func (c *Collector) collectSoftnet() error {
	data, err := c.read(c.path("/proc/net/softnet_stat"))
	if err != nil {
		return err
	}
	c.softnet, err = parseSoftnet(data, c.softnet, &c.names)
	if err != nil {
		return err
	}
	for i := range c.softnet {
		s := &c.softnet[i]
		cpu := l("cpu", s.cpu)
		c.add("node_softnet_processed_total", float64(s.processed), cpu)
		c.add("node_softnet_dropped_total", float64(s.dropped), cpu)
		c.add("node_softnet_times_squeezed_total", float64(s.squeezed), cpu)
		c.add("node_softnet_cpu_collision_total", float64(s.collision), cpu)
		c.add("node_softnet_received_rps_total", float64(s.receivedRPS), cpu)
		c.add("node_softnet_flow_limit_count_total", float64(s.flowLimit), cpu)
		c.add("node_softnet_backlog_len", float64(s.backlogLen), cpu)
	}
	return nil
}
