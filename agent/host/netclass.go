package host

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// netclass reads /sys/class/net/<iface>/<attribute> for every interface,
// as node_exporter's netclass collector (sysfs mode, its default) does:
// node_network_up, node_network_info and one "Network device property"
// series per numeric attribute. An attribute the device does not have, or
// cannot report (speed of a link that is down: EINVAL), is left out.

// netProps maps the numeric attributes to node_exporter's series names.
// The static ones never change while a device exists: they are read again
// only when the device's ifindex changes (a device of that name was
// created anew), which saves a third of the reads per cycle.
var netProps = [...]struct {
	file, name string
	static     bool
}{
	{"addr_assign_type", "node_network_address_assign_type", true},
	{"carrier", "node_network_carrier", false},
	{"carrier_changes", "node_network_carrier_changes_total", false},
	{"carrier_up_count", "node_network_carrier_up_changes_total", false},
	{"carrier_down_count", "node_network_carrier_down_changes_total", false},
	{"dev_id", "node_network_device_id", true},
	{"dormant", "node_network_dormant", false},
	{"flags", "node_network_flags", false},
	{"ifindex", "node_network_iface_id", false}, // read every cycle: it tells whether the rest is stale
	{"iflink", "node_network_iface_link", true},
	{"link_mode", "node_network_iface_link_mode", false},
	{"mtu", "node_network_mtu_bytes", false},
	{"name_assign_type", "node_network_name_assign_type", true},
	{"netdev_group", "node_network_net_dev_group", false},
	{"speed", "node_network_speed_bytes", false},
	{"tx_queue_len", "node_network_transmit_queue_length", false},
	{"type", "node_network_protocol_type", true},
}

// Indexes into netProps.
const (
	flagsProp   = 7
	ifindexProp = 8
)

// netInfoFiles are the string attributes of node_network_info, in the
// order of netState.info; address and broadcast are static.
var netInfoFiles = [...]string{"address", "broadcast", "duplex", "operstate", "ifalias"}

const staticInfo = 2 // netInfoFiles[:staticInfo] are static

// netDevAttrs is what the netclass collector knows about one device.
type netDevAttrs struct {
	vals  [len(netProps)]int64
	has   [len(netProps)]bool
	info  [len(netInfoFiles)]string
	valid bool // the static attributes were read for this ifindex
	seen  uint64
}

// netState is what the netclass collector keeps between cycles.
type netState struct {
	devs  []string // interfaces in /sys/class/net, this cycle
	attrs map[string]*netDevAttrs
	cycle uint64
	// NUL-terminated attribute file names, built once
	propFiles [len(netProps)][]byte
	infoFiles [len(netInfoFiles)][]byte
}

func (n *netState) init() {
	for i, p := range netProps {
		n.propFiles[i] = append([]byte(p.file), 0)
	}
	for i, f := range netInfoFiles {
		n.infoFiles[i] = append([]byte(f), 0)
	}
	n.attrs = make(map[string]*netDevAttrs)
}

// parseSysfsInt parses a numeric sysfs attribute as node_exporter's value
// parser does: trimmed, decimal or 0x-prefixed hex ("0x1003"), signed.
func parseSysfsInt(data []byte) (int64, bool) {
	b := bytes.TrimSpace(data)
	if len(b) == 0 || len(b) > 24 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b), 0, 64)
	return v, err == nil
}

// parseSysfsUint parses a one-number sysfs or procfs file such as
// /proc/sys/net/netfilter/nf_conntrack_max ("262144\n").
func parseSysfsUint(data []byte) (uint64, bool) {
	return parseUint(bytes.TrimSpace(data))
}

// adminState is node_network_info's adminstate label: the IFF_UP bit of
// the flags attribute.
func adminState(flags int64, ok bool) string {
	switch {
	case !ok:
		return "unknown"
	case flags&1 == 1:
		return "up"
	}
	return "down"
}

// listNetDevs lists the interfaces of /sys/class/net (symbolic links on a
// real sysfs, directories in a copy of it; regular files such as
// bonding_masters are skipped).
func (c *Collector) listNetDevs() error {
	n := &c.net
	n.devs = n.devs[:0]
	var err error
	c.buf2, err = readDir(c.sysNet, c.buf2, func(records []byte) {
		_ = forEachDirent(records, func(name []byte, typ byte) {
			if typ == dtReg || len(name) == 0 || name[0] == '.' {
				return
			}
			n.devs = append(n.devs, c.names.get(name))
		})
	})
	return err
}

func (c *Collector) collectNetClass() error {
	if err := c.listNetDevs(); err != nil {
		if isNotExist(err) {
			return errNoData
		}
		return err
	}
	n := &c.net
	if n.attrs == nil {
		n.init()
	}
	n.cycle++
	var firstErr error
	for _, dev := range n.devs {
		a := n.attrs[dev]
		if a == nil {
			a = &netDevAttrs{}
			n.attrs[dev] = a
		}
		a.seen = n.cycle
		if err := c.readNetDev(dev, a); err != nil {
			if firstErr == nil && err != errGone {
				firstErr = err
			}
			continue
		}
		up := 0.0
		if a.info[3] == "up" {
			up = 1
		}
		d := l("device", dev)
		c.add("node_network_up", up, d)
		c.add("node_network_info", 1, l("address", a.info[0]), l("adminstate", adminState(a.vals[flagsProp], a.has[flagsProp])),
			l("broadcast", a.info[1]), d, l("duplex", a.info[2]), l("ifalias", a.info[4]), l("operstate", a.info[3]))
		for i, p := range netProps {
			if !a.has[i] {
				continue
			}
			v := float64(a.vals[i])
			if p.file == "speed" {
				// Mbit/s to bytes/s in integers, as node_exporter: -1 (unknown) is -125000.
				v = float64(a.vals[i] * 1000 * 1000 / 8)
			}
			c.add(p.name, v, d)
		}
	}
	for dev, a := range n.attrs {
		if a.seen != n.cycle {
			delete(n.attrs, dev)
		}
	}
	return firstErr
}

// errGone: the device vanished between the listing and the reading.
var errGone = errors.New("device gone")

// readNetDev reads the attributes of dev into a, the static ones only when
// its ifindex is new. Attributes the device lacks or cannot report are left
// out; other read errors are returned.
func (c *Collector) readNetDev(dev string, a *netDevAttrs) error {
	n := &c.net
	dir, err := openDir(c.path("/sys/class/net/", dev))
	if err != nil {
		if isNotExist(err) {
			a.valid = false
			return errGone
		}
		return err
	}
	defer closeDir(dir)
	var firstErr error
	read := func(file []byte) ([]byte, bool) {
		data, err := readFileAt(dir, file, c.buf, true)
		c.buf = data
		if err != nil {
			if !ignorableSysfsErr(err) && firstErr == nil {
				firstErr = fmt.Errorf("/sys/class/net/%s: %w", dev, err)
			}
			return nil, false
		}
		return data, true
	}
	oldIndex, hadIndex := a.vals[ifindexProp], a.has[ifindexProp]
	if data, ok := read(n.propFiles[ifindexProp]); ok {
		a.vals[ifindexProp], a.has[ifindexProp] = parseSysfsInt(data)
	} else {
		a.has[ifindexProp] = false
	}
	fresh := !a.valid || !hadIndex || oldIndex != a.vals[ifindexProp]
	for i, p := range netProps {
		if i == ifindexProp || p.static && !fresh {
			continue
		}
		a.has[i] = false
		if data, ok := read(n.propFiles[i]); ok {
			a.vals[i], a.has[i] = parseSysfsInt(data)
		}
	}
	for i := range netInfoFiles {
		if i < staticInfo && !fresh {
			continue
		}
		a.info[i] = ""
		if data, ok := read(n.infoFiles[i]); ok {
			a.info[i] = c.names.get(bytes.TrimSpace(data))
		}
	}
	a.valid = firstErr == nil
	return firstErr
}
