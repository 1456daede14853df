package host

import (
	"bytes"
	"fmt"
)

// parseUDPQueues sums the tx_queue and rx_queue columns ("tx:rx" in
// hexadecimal, column 5) of /proc/net/udp or /proc/net/udp6: the bytes the
// kernel holds for UDP sockets.
func parseUDPQueues(data []byte) (tx, rx uint64, err error) {
	var arr [6][]byte
	_, data = nextLine(data) // header
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) == 0 {
			continue
		}
		if len(f) < 5 {
			return 0, 0, fmt.Errorf("parse udp socket line %q: want at least 5 columns", line)
		}
		i := bytes.IndexByte(f[4], ':')
		if i < 0 {
			return 0, 0, fmt.Errorf("parse udp socket line %q: want tx_queue:rx_queue in column 5", line)
		}
		t, ok1 := parseHex64(f[4][:i])
		r, ok2 := parseHex64(f[4][i+1:])
		if !ok1 || !ok2 {
			return 0, 0, fmt.Errorf("parse udp socket line %q: bad queue %q", line, f[4])
		}
		tx += t
		rx += r
	}
	return tx, rx, nil
}

// collectUDPQueues reports node_udp_queues{ip,queue} from /proc/net/udp
// and /proc/net/udp6, as node_exporter's udp_queues collector does.
func (c *Collector) collectUDPQueues() error {
	found := 0
	for _, f := range [...]struct{ file, ip string }{{"/proc/net/udp", "v4"}, {"/proc/net/udp6", "v6"}} {
		data, err := c.read(c.path(f.file))
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return err
		}
		tx, rx, err := parseUDPQueues(data)
		if err != nil {
			return err
		}
		found++
		c.add("node_udp_queues", float64(tx), l("ip", f.ip), l("queue", "tx"))
		c.add("node_udp_queues", float64(rx), l("ip", f.ip), l("queue", "rx"))
	}
	if found == 0 {
		return errNoData
	}
	return nil
}
