package host

import (
	"bytes"
	"fmt"
)

// psiLine holds the totals of a /proc/pressure/<resource> file in
// microseconds: "some avg10=0.00 avg60=0.00 avg300=0.00 total=123" and the
// same for "full".
type psiLine struct {
	some, full       uint64
	hasSome, hasFull bool
}

// parsePSI parses a /proc/pressure file into p.
func parsePSI(data []byte, p *psiLine) error {
	*p = psiLine{}
	var arr [6][]byte
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		f := fields(line, arr[:0])
		if len(f) == 0 {
			continue
		}
		var total []byte
		for _, kv := range f[1:] {
			if t, ok := bytes.CutPrefix(kv, []byte("total=")); ok {
				total = t
			}
		}
		if total == nil {
			return fmt.Errorf("parse pressure line %q: no total=", line)
		}
		v, ok := parseUint(total)
		if !ok {
			return fmt.Errorf("parse pressure line %q: bad total %q", line, total)
		}
		switch string(f[0]) {
		case "some":
			p.some, p.hasSome = v, true
		case "full":
			p.full, p.hasFull = v, true
		default:
			return fmt.Errorf("parse pressure line %q: want some or full", line)
		}
	}
	return nil
}

// collectPressure reads /proc/pressure/{cpu,io,memory,irq} as
// node_exporter's pressure collector does. Without PSI (kernel < 4.20 or
// psi=0) it has no data.
func (c *Collector) collectPressure() error {
	found := 0
	for _, res := range [...]string{"cpu", "io", "memory", "irq"} {
		data, err := c.read(c.path("/proc/pressure/", res))
		if err != nil {
			if isNotExist(err) {
				continue
			}
			if isNotSupported(err) { // PSI compiled in but off
				return errNoData
			}
			return err
		}
		p := &c.psi
		if err := parsePSI(data, p); err != nil {
			return fmt.Errorf("/proc/pressure/%s: %w", res, err)
		}
		if !p.hasSome && res != "irq" || !p.hasFull && res != "cpu" {
			return errNoData
		}
		// µs to s as node_exporter divides (twice by 1000: the last bit
		// differs from one division by 1e6).
		sec := func(us uint64) float64 { return float64(us) / 1000.0 / 1000.0 }
		switch res {
		case "cpu":
			c.add("node_pressure_cpu_waiting_seconds_total", sec(p.some))
		case "io":
			c.add("node_pressure_io_waiting_seconds_total", sec(p.some))
			c.add("node_pressure_io_stalled_seconds_total", sec(p.full))
		case "memory":
			c.add("node_pressure_memory_waiting_seconds_total", sec(p.some))
			c.add("node_pressure_memory_stalled_seconds_total", sec(p.full))
		case "irq":
			c.add("node_pressure_irq_stalled_seconds_total", sec(p.full))
		}
		found++
	}
	if found == 0 {
		return errNoData
	}
	return nil
}
