package host

import "fmt"

// collectEntropy reads /proc/sys/kernel/random/entropy_avail and poolsize,
// as node_exporter's entropy collector does.
func (c *Collector) collectEntropy() error {
	for _, f := range [...]struct{ file, name string }{
		{"entropy_avail", "node_entropy_available_bits"},
		{"poolsize", "node_entropy_pool_size_bits"},
	} {
		data, err := c.read(c.path("/proc/sys/kernel/random/", f.file))
		if err != nil {
			return err
		}
		v, ok := parseSysfsUint(data)
		if !ok {
			return fmt.Errorf("parse /proc/sys/kernel/random/%s %q: not a number", f.file, data)
		}
		c.add(f.name, float64(v))
	}
	return nil
}

// collectKernelHung reads /proc/sys/kernel/hung_task_detect_count (Linux
// 6.15 and later), as node_exporter's kernel_hung collector does.
func (c *Collector) collectKernelHung() error {
	data, err := c.readOptional(c.path("/proc/sys/kernel/hung_task_detect_count"))
	if err != nil {
		return err
	}
	v, ok := parseSysfsUint(data)
	if !ok {
		return fmt.Errorf("parse /proc/sys/kernel/hung_task_detect_count %q: not a number", data)
	}
	c.add("node_kernel_hung_tasks_total", float64(v))
	return nil
}
