package host

import (
	"bytes"
	"fmt"
)

// arpCount is the number of /proc/net/arp entries of one device.
type arpCount struct {
	device string
	n      int
}

// parseARP counts the entries of /proc/net/arp per device (the last of its
// six columns), in order of first appearance, into dst[:0]. Device names
// are interned in in.
func parseARP(data []byte, dst []arpCount, in *interner) ([]arpCount, error) {
	dst = dst[:0]
	var arr [8][]byte
	hdr, data := nextLine(data)
	if !bytes.HasPrefix(hdr, []byte("IP address")) && len(bytes.TrimSpace(hdr)) > 0 {
		return dst, fmt.Errorf("parse /proc/net/arp: first line %q is not the header", hdr)
	}
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) == 0 {
			continue
		}
		if len(f) != 6 {
			return dst, fmt.Errorf("parse /proc/net/arp line %q: %d columns; want 6", line, len(f))
		}
		dev := in.get(f[5])
		i := len(dst) - 1
		for i >= 0 && dst[i].device != dev {
			i--
		}
		if i < 0 {
			dst = append(dst, arpCount{device: dev})
			i = len(dst) - 1
		}
		dst[i].n++
	}
	return dst, nil
}

// collectARP counts ARP entries per device from /proc/net/arp (what
// node_exporter reads with --no-collector.arp.netlink; its netlink default
// counts the same entries).
func (c *Collector) collectARP() error {
	data, err := c.read(c.path("/proc/net/arp"))
	if err != nil {
		return err
	}
	if c.arp, err = parseARP(data, c.arp, &c.names); err != nil {
		return err
	}
	for _, a := range c.arp {
		c.add("node_arp_entries", float64(a.n), l("device", a.device))
	}
	return nil
}
