package host

import (
	"bytes"
	"fmt"
)

// netDev is one interface line of /proc/net/dev: 8 receive and 8 transmit
// counters.
type netDev struct {
	device string
	v      [16]uint64
}

// netDevMetrics are node_exporter's names for the /proc/net/dev columns.
var netDevMetrics = [16]string{
	"node_network_receive_bytes_total",
	"node_network_receive_packets_total",
	"node_network_receive_errs_total",
	"node_network_receive_drop_total",
	"node_network_receive_fifo_total",
	"node_network_receive_frame_total",
	"node_network_receive_compressed_total",
	"node_network_receive_multicast_total",
	"node_network_transmit_bytes_total",
	"node_network_transmit_packets_total",
	"node_network_transmit_errs_total",
	"node_network_transmit_drop_total",
	"node_network_transmit_fifo_total",
	"node_network_transmit_colls_total",
	"node_network_transmit_carrier_total",
	"node_network_transmit_compressed_total",
}

// parseNetDev parses /proc/net/dev into dst[:0] and returns it. The two
// header lines are skipped; every other line is "name: 16 counters".
func parseNetDev(data []byte, dst []netDev, in *interner) ([]netDev, error) {
	dst = dst[:0]
	var arr [17][]byte
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			if bytes.Contains(line, []byte("|")) || len(bytes.TrimSpace(line)) == 0 {
				continue // header
			}
			return dst, fmt.Errorf("parse /proc/net/dev line %q: want \"name: counters\"", line)
		}
		name := bytes.TrimSpace(line[:colon])
		if len(name) == 0 {
			return dst, fmt.Errorf("parse /proc/net/dev line %q: empty interface name", line)
		}
		f := fields(line[colon+1:], arr[:0])
		if len(f) != 16 {
			return dst, fmt.Errorf("parse /proc/net/dev line %q: want 16 counters, got %d", line, len(f))
		}
		var d netDev
		d.device = in.get(name)
		for i, b := range f {
			v, ok := parseUint(b)
			if !ok {
				return dst, fmt.Errorf("parse /proc/net/dev line %q: bad counter %q", line, b)
			}
			d.v[i] = v
		}
		dst = append(dst, d)
	}
	return dst, nil
}

// emitNetDev appends the /proc/net/dev counters and, from
// /sys/class/net/<dev>/statistics/rx_nohandler, the receive_nohandler
// counter that node_exporter's netlink mode (its default) reports.
func (c *Collector) emitNetDev(ds []netDev) {
	for i := range ds {
		d := &ds[i]
		for j, name := range netDevMetrics {
			c.add(name, float64(d.v[j]), l("device", d.device))
		}
		data, err := c.read(c.path("/sys/class/net/", d.device, "/statistics/rx_nohandler"))
		if err != nil {
			continue
		}
		if v, ok := parseSysfsUint(data); ok {
			c.add("node_network_receive_nohandler_total", float64(v), l("device", d.device))
		}
	}
}
