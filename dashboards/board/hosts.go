package board

import (
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// hostSel is the selector body every Hosts query starts with.
const hostSel = `instance=~"$host"`

// hostQ replaces {H} in expr with the host matchers.
func hostQ(expr string) string { return strings.ReplaceAll(expr, "{H}", hostSel) }

// fsFilter keeps real filesystems out of the pseudo ones.
const fsFilter = `fstype!~"tmpfs|devtmpfs|overlay|squashfs|nsfs|ramfs|autofs|proc|sysfs"`

// The CPU panels read the dashboards' recorded series (CPU seconds by host
// and mode, CPUs per host); with Options.RawQueries they compute the same
// from node_cpu_seconds_total.

// cpus is the number of CPUs of each host.
func cpus(o Options) string {
	if o.RawQueries {
		return hostQ(`count by (instance) (node_cpu_seconds_total{{H},mode="idle"})`)
	}
	return hostQ(`sum by (instance) (` + RecCPUs + `{{H}})`)
}

// cpuBusy is the share of each host's CPUs not idle.
func cpuBusy(o Options) string {
	if o.RawQueries {
		return hostQ(`1 - avg by (instance) (rate(node_cpu_seconds_total{{H},mode="idle"}[$__rate_interval]))`)
	}
	return hostQ(`1 - sum by (instance) (` + RecCPUByMode + `{{H},mode="idle"}) / ` + cpus(o))
}

// cpuByMode is the share of each host's CPUs in each mode but idle.
func cpuByMode(o Options) string {
	src := `rate(node_cpu_seconds_total{{H},mode!="idle"}[$__rate_interval])`
	if !o.RawQueries {
		src = RecCPUByMode + `{{H},mode!="idle"}`
	}
	return hostQ(`sum by (instance, mode) (`+src+`) / on (instance) group_left () `) + cpus(o)
}

// hosts is the per-host system dashboard over node_exporter's metric names,
// which the Telltale agent (and the collector for its own host) emits with
// job="node" and instance=<hostname>.
func hosts(opts Options) (*dashboard.DashboardBuilder, string, string) {
	const title = "Hosts"
	b := newDashboard(UIDHosts, title,
		"Per host CPU, load, memory, swap, disk, filesystems and network from the Telltale agent (node_exporter metric names), with every deploy marked.",
		[]string{"hosts"}, opts, deployFilter{},
		labelVariable("host", "instance", "node_uname_info", true).Label("host"))

	row(b, "Overview")
	b.WithPanel(single("Uptime", "Time since the host booted.", units.Seconds,
		hostQ(`time() - node_boot_time_seconds{{H}}`), "{{instance}}", quarter))
	b.WithPanel(single("CPU busy", "Share of all CPUs not idle over the last minute.", units.PercentUnit,
		cpuBusy(opts), "{{instance}}", quarter))
	b.WithPanel(single("Memory used", "Share of memory not available to new work (MemTotal - MemAvailable).", units.PercentUnit,
		hostQ(`1 - node_memory_MemAvailable_bytes{{H}} / node_memory_MemTotal_bytes{{H}}`), "{{instance}}", quarter))
	b.WithPanel(single("Kernel", "Host name and kernel release from node_uname_info.", units.NoUnit,
		hostQ(`node_uname_info{{H}}`), "{{nodename}}: {{release}}", quarter).
		TextMode(common.BigValueTextModeName))

	row(b, "CPU")
	b.WithPanel(stacked(graph("CPU by mode", "Share of the host's CPUs spent in each mode other than idle (user, system, iowait, steal ...).", units.PercentUnit, half,
		series{cpuByMode(opts), "{{instance}} {{mode}}"})).
		Max(1))
	b.WithPanel(graph("Load", "Run queue length averaged over 1, 5 and 15 minutes, beside the number of CPUs.", units.Short, half,
		series{hostQ(`node_load1{{H}}`), "{{instance}} load1"},
		series{hostQ(`node_load5{{H}}`), "{{instance}} load5"},
		series{hostQ(`node_load15{{H}}`), "{{instance}} load15"},
		series{cpus(opts), "{{instance}} CPUs"}))
	b.WithPanel(graph("Running processes", "Processes in the runnable state.", units.Short, half,
		series{hostQ(`node_procs_running{{H}}`), "{{instance}}"}))
	b.WithPanel(graph("Context switches", "Context switches per second.", units.OpsPerSecond, half,
		series{hostQ(`rate(node_context_switches_total{{H}}[$__rate_interval])`), "{{instance}}"}))

	row(b, "Memory")
	b.WithPanel(graph("Memory", "Used (MemTotal - MemAvailable), available and total memory.", units.BytesIEC, half,
		series{hostQ(`node_memory_MemTotal_bytes{{H}} - node_memory_MemAvailable_bytes{{H}}`), "{{instance}} used"},
		series{hostQ(`node_memory_MemAvailable_bytes{{H}}`), "{{instance}} available"},
		series{hostQ(`node_memory_MemTotal_bytes{{H}}`), "{{instance}} total"}))
	b.WithPanel(graph("Swap", "Swap in use and swap size.", units.BytesIEC, half,
		series{hostQ(`node_memory_SwapTotal_bytes{{H}} - node_memory_SwapFree_bytes{{H}}`), "{{instance}} used"},
		series{hostQ(`node_memory_SwapTotal_bytes{{H}}`), "{{instance}} total"}))

	row(b, "Disk")
	b.WithPanel(graph("Disk throughput", "Bytes read and written per second by device.", units.BytesPerSecondSI, half,
		series{hostQ(`rate(node_disk_read_bytes_total{{H}}[$__rate_interval])`), "{{instance}} {{device}} read"},
		series{hostQ(`rate(node_disk_written_bytes_total{{H}}[$__rate_interval])`), "{{instance}} {{device}} written"}))
	b.WithPanel(graph("Disk busy", "Share of time the device had I/O in flight (node_disk_io_time_seconds_total).", units.PercentUnit, half,
		series{hostQ(`rate(node_disk_io_time_seconds_total{{H}}[$__rate_interval])`), "{{instance}} {{device}}"}))
	b.WithPanel(graph("Filesystem fill", "Share of each filesystem not available to unprivileged users (1 - avail / size); pseudo filesystems left out.", units.PercentUnit, half,
		series{hostQ(`1 - node_filesystem_avail_bytes{{H},` + fsFilter + `} / node_filesystem_size_bytes{{H},` + fsFilter + `}`), "{{instance}} {{mountpoint}}"}).
		Max(1))
	b.WithPanel(graph("Filesystem available", "Bytes available to unprivileged users per filesystem.", units.BytesIEC, half,
		series{hostQ(`node_filesystem_avail_bytes{{H},` + fsFilter + `}`), "{{instance}} {{mountpoint}}"}))

	row(b, "Network")
	b.WithPanel(graph("Network received", "Bytes received per second by interface (loopback left out).", units.BytesPerSecondSI, half,
		series{hostQ(`rate(node_network_receive_bytes_total{{H},device!="lo"}[$__rate_interval])`), "{{instance}} {{device}}"}))
	b.WithPanel(graph("Network sent", "Bytes sent per second by interface (loopback left out).", units.BytesPerSecondSI, half,
		series{hostQ(`rate(node_network_transmit_bytes_total{{H},device!="lo"}[$__rate_interval])`), "{{instance}} {{device}}"}))
	return b, UIDHosts, title
}
