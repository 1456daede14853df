package host

import (
	"slices"
	"strings"

	"github.com/telltale-dev/telltale/samples"
)

// Metric metadata (# HELP and # TYPE) of every family the Collector emits,
// worded and typed as node_exporter v1.12.1 words and types them, so
// /api/v1/metadata shows what node_exporter users know.

// Metric types as remote write and /api/v1/metadata name them.
const (
	gauge   = "gauge"
	counter = "counter"
	untyped = "unknown" // node_exporter's "untyped"
)

// family is the metadata of one metric family.
type family struct {
	typ, help string
}

// families holds the families with a fixed name. Families whose names come
// from the kernel files (meminfo, vmstat, netstat, sockstat, the netdev and
// netclass per-device series) get their metadata from familyOf's rules.
var families = map[string]family{
	"node_arp_entries":                            {gauge, "ARP entries by device"},
	"node_boot_time_seconds":                      {gauge, "Node boot time, in unixtime."},
	"node_context_switches_total":                 {counter, "Total number of context switches."},
	"node_cpu_guest_seconds_total":                {counter, "Seconds the CPUs spent in guests (VMs) for each mode."},
	"node_cpu_seconds_total":                      {counter, "Seconds the CPUs spent in each mode."},
	"node_disk_discard_time_seconds_total":        {counter, "This is the total number of seconds spent by all discards."},
	"node_disk_discarded_sectors_total":           {counter, "The total number of sectors discarded successfully."},
	"node_disk_discards_completed_total":          {counter, "The total number of discards completed successfully."},
	"node_disk_discards_merged_total":             {counter, "The total number of discards merged."},
	"node_disk_flush_requests_time_seconds_total": {counter, "This is the total number of seconds spent by all flush requests."},
	"node_disk_flush_requests_total":              {counter, "The total number of flush requests completed successfully"},
	"node_disk_info":                              {gauge, "Info of /sys/block/<block_device>."},
	"node_disk_io_now":                            {gauge, "The number of I/Os currently in progress."},
	"node_disk_io_time_seconds_total":             {counter, "Total seconds spent doing I/Os."},
	"node_disk_io_time_weighted_seconds_total":    {counter, "The weighted # of seconds spent doing I/Os."},
	"node_disk_read_bytes_total":                  {counter, "The total number of bytes read successfully."},
	"node_disk_read_time_seconds_total":           {counter, "The total number of seconds spent by all reads."},
	"node_disk_reads_completed_total":             {counter, "The total number of reads completed successfully."},
	"node_disk_reads_merged_total":                {counter, "The total number of reads merged."},
	"node_disk_write_time_seconds_total":          {counter, "This is the total number of seconds spent by all writes."},
	"node_disk_writes_completed_total":            {counter, "The total number of writes completed successfully."},
	"node_disk_writes_merged_total":               {counter, "The number of writes merged."},
	"node_disk_written_bytes_total":               {counter, "The total number of bytes written successfully."},
	"node_entropy_available_bits":                 {gauge, "Bits of available entropy."},
	"node_entropy_pool_size_bits":                 {gauge, "Bits of entropy pool."},
	"node_filefd_allocated":                       {gauge, "File descriptor statistics: allocated."},
	"node_filefd_maximum":                         {gauge, "File descriptor statistics: maximum."},
	"node_filesystem_avail_bytes":                 {gauge, "Filesystem space available to non-root users in bytes."},
	"node_filesystem_device_error":                {gauge, "Whether an error occurred while getting statistics for the given device."},
	"node_filesystem_files":                       {gauge, "Filesystem total file nodes."},
	"node_filesystem_files_free":                  {gauge, "Filesystem total free file nodes."},
	"node_filesystem_free_bytes":                  {gauge, "Filesystem free space in bytes."},
	"node_filesystem_mount_info":                  {gauge, "Filesystem mount information."},
	"node_filesystem_purgeable_bytes":             {gauge, "Filesystem space available including purgeable space (MacOS specific)."},
	"node_filesystem_readonly":                    {gauge, "Filesystem read-only status."},
	"node_filesystem_size_bytes":                  {gauge, "Filesystem size in bytes."},
	"node_forks_total":                            {counter, "Total number of forks."},
	"node_intr_total":                             {counter, "Total number of interrupts serviced."},
	"node_kernel_hung_tasks_total":                {counter, "Total number of tasks that have been detected as hung since the system booted."},
	"node_load1":                                  {gauge, "1m load average."},
	"node_load15":                                 {gauge, "15m load average."},
	"node_load5":                                  {gauge, "5m load average."},
	"node_network_info":                           {gauge, "Non-numeric data from /sys/class/net/<iface>, value is always 1."},
	"node_network_up":                             {gauge, "Value is 1 if operstate is 'up', 0 otherwise."},
	"node_nf_conntrack_entries":                   {gauge, "Number of currently allocated flow entries for connection tracking."},
	"node_nf_conntrack_entries_limit":             {gauge, "Maximum size of connection tracking table."},
	"node_nf_conntrack_stat_drop":                 {gauge, "Number of packets dropped due to conntrack failure."},
	"node_nf_conntrack_stat_early_drop":           {gauge, "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."},
	"node_nf_conntrack_stat_found":                {gauge, "Number of searched entries which were successful."},
	"node_nf_conntrack_stat_ignore":               {gauge, "Number of packets seen which are already connected to a conntrack entry."},
	"node_nf_conntrack_stat_insert":               {gauge, "Number of entries inserted into the list."},
	"node_nf_conntrack_stat_insert_failed":        {gauge, "Number of entries for which list insertion was attempted but failed."},
	"node_nf_conntrack_stat_invalid":              {gauge, "Number of packets seen which can not be tracked."},
	"node_nf_conntrack_stat_search_restart":       {gauge, "Number of conntrack table lookups which had to be restarted due to hashtable resizes."},
	"node_os_info":                                {gauge, "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id."},
	"node_os_version":                             {gauge, "Metric containing the major.minor part of the OS version."},
	"node_pressure_cpu_waiting_seconds_total":     {counter, "Total time in seconds that processes have waited for CPU time"},
	"node_pressure_io_stalled_seconds_total":      {counter, "Total time in seconds no process could make progress due to IO congestion"},
	"node_pressure_io_waiting_seconds_total":      {counter, "Total time in seconds that processes have waited due to IO congestion"},
	"node_pressure_memory_stalled_seconds_total":  {counter, "Total time in seconds no process could make progress due to memory congestion"},
	"node_pressure_memory_waiting_seconds_total":  {counter, "Total time in seconds that processes have waited for memory"},
	"node_procs_blocked":                          {gauge, "Number of processes blocked waiting for I/O to complete."},
	"node_procs_running":                          {gauge, "Number of processes in runnable state."},
	"node_scrape_collector_duration_seconds":      {gauge, "node_exporter: Duration of a collector scrape."},
	"node_scrape_collector_success":               {gauge, "node_exporter: Whether a collector succeeded."},
	"node_selinux_enabled":                        {gauge, "SELinux is enabled, 1 is true, 0 is false"},
	"node_softnet_backlog_len":                    {gauge, "Softnet backlog status"},
	"node_softnet_cpu_collision_total":            {counter, "Number of collision occur while obtaining device lock while transmitting"},
	"node_softnet_dropped_total":                  {counter, "Number of dropped packets"},
	"node_softnet_flow_limit_count_total":         {counter, "Number of times flow limit has been reached"},
	"node_softnet_processed_total":                {counter, "Number of processed packets"},
	"node_softnet_received_rps_total":             {counter, "Number of times cpu woken up received_rps"},
	"node_softnet_times_squeezed_total":           {counter, "Number of times processing packets ran out of quota"},
	"node_textfile_scrape_error":                  {gauge, "1 if there was an error opening or reading a file, 0 otherwise"},
	"node_time_clocksource_available_info":        {gauge, "Available clocksources read from '/sys/devices/system/clocksource'."},
	"node_time_clocksource_current_info":          {gauge, "Current clocksource read from '/sys/devices/system/clocksource'."},
	"node_time_seconds":                           {gauge, "System time in seconds since epoch (1970)."},
	"node_time_zone_offset_seconds":               {gauge, "System time zone offset in seconds."},
	"node_timex_estimated_error_seconds":          {gauge, "Estimated error in seconds."},
	"node_timex_frequency_adjustment_ratio":       {gauge, "Local clock frequency adjustment."},
	"node_timex_loop_time_constant":               {gauge, "Phase-locked loop time constant."},
	"node_timex_maxerror_seconds":                 {gauge, "Maximum error in seconds."},
	"node_timex_offset_seconds":                   {gauge, "Time offset in between local system and reference clock."},
	"node_timex_pps_calibration_total":            {counter, "Pulse per second count of calibration intervals."},
	"node_timex_pps_error_total":                  {counter, "Pulse per second count of calibration errors."},
	"node_timex_pps_frequency_hertz":              {gauge, "Pulse per second frequency."},
	"node_timex_pps_jitter_seconds":               {gauge, "Pulse per second jitter."},
	"node_timex_pps_jitter_total":                 {counter, "Pulse per second count of jitter limit exceeded events."},
	"node_timex_pps_shift_seconds":                {gauge, "Pulse per second interval duration."},
	"node_timex_pps_stability_exceeded_total":     {counter, "Pulse per second count of stability limit exceeded events."},
	"node_timex_pps_stability_hertz":              {gauge, "Pulse per second stability, average of recent frequency changes."},
	"node_timex_status":                           {gauge, "Value of the status array bits."},
	"node_timex_sync_status":                      {gauge, "Is clock synchronized to a reliable server (1 = yes, 0 = no)."},
	"node_timex_tai_offset_seconds":               {gauge, "International Atomic Time (TAI) offset."},
	"node_timex_tick_seconds":                     {gauge, "Seconds between clock ticks."},
	"node_udp_queues":                             {gauge, "Number of allocated memory in the kernel for UDP datagrams in bytes."},
	"node_uname_info":                             {gauge, "Labeled system information as provided by the uname system call."},
	"node_processes_pids":                         {gauge, "Number of PIDs"},
	"node_processes_threads":                      {gauge, "Allocated threads in system"},
	"node_pressure_irq_stalled_seconds_total":     {counter, "Total time in seconds no process could make progress due to IRQ congestion"},
	"node_disk_filesystem_info":                   {gauge, "Info about disk filesystem."},
	"node_disk_device_mapper_info":                {gauge, "Info about disk device mapper."},
	"node_disk_ata_write_cache":                   {gauge, "ATA disk has a write cache."},
	"node_disk_ata_write_cache_enabled":           {gauge, "ATA disk has its write cache enabled."},
	"node_disk_ata_rotation_rate_rpm":             {gauge, "ATA disk rotation rate in RPMs (0 for SSDs)."},
	"node_textfile_mtime_seconds":                 {gauge, "Unixtime mtime of textfiles successfully read."},
	"node_selinux_config_mode":                    {gauge, "Configured SELinux enforcement mode"},
	"node_selinux_current_mode":                   {gauge, "Current SELinux enforcement mode"},
	"node_os_support_end_timestamp_seconds":       {gauge, "Metric containing the end-of-life date timestamp of the OS."},
	"node_schedstat_running_seconds_total":        {counter, "Number of seconds CPU spent running a process."},
	"node_schedstat_waiting_seconds_total":        {counter, "Number of seconds spent by processing waiting for this CPU."},
	"node_schedstat_timeslices_total":             {counter, "Number of timeslices executed by CPU."},
	"node_sockstat_sockets_used":                  {gauge, "Number of IPv4 sockets in use."},
}

// netclassCounters are the netclass properties node_exporter types as
// counters; the others are gauges.
var netclassCounters = []string{"carrier_changes_total", "carrier_up_changes_total", "carrier_down_changes_total"}

// familyOf returns the metadata of the family name; ok is false for a name
// the Collector does not emit (textfile families carry their own).
func familyOf(name string) (f family, ok bool) {
	if f, ok := families[name]; ok {
		return f, true
	}
	rest, isNode := strings.CutPrefix(name, "node_")
	if !isNode {
		return family{}, false
	}
	switch {
	case strings.HasPrefix(rest, "memory_"):
		typ := gauge
		if strings.HasSuffix(rest, "_total") {
			typ = counter
		}
		return family{typ, "Memory information field " + rest[len("memory_"):] + "."}, true
	case strings.HasPrefix(rest, "vmstat_"):
		return family{untyped, "/proc/vmstat information field " + rest[len("vmstat_"):] + "."}, true
	case strings.HasPrefix(rest, "netstat_"):
		// node_netstat_Tcp_InSegs: "Statistic TcpInSegs."
		return family{untyped, "Statistic " + strings.Replace(rest[len("netstat_"):], "_", "", 1) + "."}, true
	case strings.HasPrefix(rest, "sockstat_"):
		// node_sockstat_TCP_mem_bytes: "Number of TCP sockets in state mem_bytes."
		proto, state, ok := strings.Cut(rest[len("sockstat_"):], "_")
		if !ok {
			return family{}, false
		}
		return family{gauge, "Number of " + proto + " sockets in state " + state + "."}, true
	case strings.HasPrefix(rest, "network_receive_") || strings.HasPrefix(rest, "network_transmit_"):
		if stat, ok := strings.CutSuffix(rest[len("network_"):], "_total"); ok {
			return family{counter, "Network device statistic " + stat + "."}, true
		}
		return family{gauge, "Network device property: " + rest[len("network_"):]}, true
	case strings.HasPrefix(rest, "network_"):
		prop := rest[len("network_"):]
		typ := gauge
		if slices.Contains(netclassCounters, prop) {
			typ = counter
		}
		return family{typ, "Network device property: " + prop}, true
	}
	return family{}, false
}

// Metadata appends to dst the metadata of every family the last Collect
// emitted, sorted by name: node_exporter's HELP and TYPE for host families,
// the file's for textfile families (node_exporter's "Metric read from
// <files>" when a file gives no HELP). It allocates; call it once in a while
// (Prometheus sends metadata once a minute), not every cycle.
func (c *Collector) Metadata(dst *samples.Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := len(dst.Metadata)
	for n := range c.emitted {
		if _, ok := c.textfileMeta[n]; ok {
			continue
		}
		if f, ok := familyOf(n); ok {
			dst.Metadata = append(dst.Metadata, samples.Metadata{Name: n, Type: f.typ, Help: f.help})
		}
	}
	for _, m := range c.textfileMeta {
		dst.Metadata = append(dst.Metadata, m)
	}
	slices.SortFunc(dst.Metadata[start:], func(a, b samples.Metadata) int { return strings.Compare(a.Name, b.Name) })
}
