package host

import (
	"bytes"
	"fmt"
)

// parseSELinuxConfig returns the mode /etc/selinux/config sets (SELINUX=):
// 1 enforcing, 0 permissive, -1 disabled or not set, as node_exporter's
// node_selinux_config_mode reports it.
func parseSELinuxConfig(data []byte) float64 {
	mode := -1.0
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("SELINUX="))
		if !ok {
			continue
		}
		switch string(bytes.Trim(bytes.TrimSpace(v), `"'`)) {
		case "enforcing":
			mode = 1
		case "permissive":
			mode = 0
		default:
			mode = -1
		}
	}
	return mode
}

// collectSELinux reports whether SELinux is on: its filesystem's enforce
// file exists under Root/sys/fs/selinux. When it is, the current mode is
// that file (1 enforcing, 0 permissive) and the configured mode comes from
// Root/etc/selinux/config.
func (c *Collector) collectSELinux() error {
	data, err := c.read(c.path("/sys/fs/selinux/enforce"))
	if err != nil {
		if isNotExist(err) {
			c.add("node_selinux_enabled", 0)
			return nil
		}
		return err
	}
	cur, ok := parseSysfsUint(data)
	if !ok {
		return fmt.Errorf("parse /sys/fs/selinux/enforce %q: not a number", data)
	}
	c.add("node_selinux_enabled", 1)
	cfg := -1.0
	if data, err := c.read(c.path("/etc/selinux/config")); err == nil {
		cfg = parseSELinuxConfig(data)
	}
	c.add("node_selinux_config_mode", cfg)
	c.add("node_selinux_current_mode", float64(cur))
	return nil
}
