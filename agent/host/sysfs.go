package host

import "bytes"

// parseSysfsUint parses a one-number sysfs or procfs file such as
// /sys/class/net/eth0/mtu ("1500\n").
func parseSysfsUint(data []byte) (uint64, bool) {
	return parseUint(bytes.TrimSpace(data))
}

// parseOperstate reports whether /sys/class/net/<dev>/operstate says "up",
// which is what node_network_up means.
func parseOperstate(data []byte) bool {
	return string(bytes.TrimSpace(data)) == "up"
}
