package host

// timexValues are the fields of struct timex (adjtimex(2)) that
// node_exporter's timex collector reports, and the call's return value.
type timexValues struct {
	state                               int // return value: TIME_OK ... TIME_ERROR
	offset, freq, maxerror, esterror    int64
	status, constant, tick              int64
	ppsfreq, jitter, shift, stabil      int64
	jitcnt, calcnt, errcnt, stbcnt, tai int64
}

const (
	timeError = 5      // TIME_ERROR: the clock is not synchronized
	staNano   = 0x2000 // STA_NANO: offset and jitter in ns, not µs
	ppm16frac = 1000000.0 * 65536.0
)

// emitTimex appends node_exporter's node_timex_* series for t, with its
// units and conversions.
func (c *Collector) emitTimex(t *timexValues) {
	sync := 1.0
	if t.state == timeError {
		sync = 0
	}
	div := 1000000.0
	if t.status&staNano != 0 {
		div = 1000000000.0
	}
	c.add("node_timex_sync_status", sync)
	c.add("node_timex_offset_seconds", float64(t.offset)/div)
	c.add("node_timex_frequency_adjustment_ratio", 1+float64(t.freq)/ppm16frac)
	c.add("node_timex_maxerror_seconds", float64(t.maxerror)/1000000.0)
	c.add("node_timex_estimated_error_seconds", float64(t.esterror)/1000000.0)
	c.add("node_timex_status", float64(t.status))
	c.add("node_timex_loop_time_constant", float64(t.constant))
	c.add("node_timex_tick_seconds", float64(t.tick)/1000000.0)
	c.add("node_timex_pps_frequency_hertz", float64(t.ppsfreq)/ppm16frac)
	c.add("node_timex_pps_jitter_seconds", float64(t.jitter)/div)
	c.add("node_timex_pps_shift_seconds", float64(t.shift))
	c.add("node_timex_pps_stability_hertz", float64(t.stabil)/ppm16frac)
	c.add("node_timex_pps_jitter_total", float64(t.jitcnt))
	c.add("node_timex_pps_calibration_total", float64(t.calcnt))
	c.add("node_timex_pps_error_total", float64(t.errcnt))
	c.add("node_timex_pps_stability_exceeded_total", float64(t.stbcnt))
	c.add("node_timex_tai_offset_seconds", float64(t.tai))
}

// collectTimex reads the kernel clock's state with adjtimex(2) (a query:
// modes 0 changes nothing). It needs no privilege; a sandbox that forbids
// it means no data.
func (c *Collector) collectTimex() error {
	var t timexValues
	if err := adjtimex(&t); err != nil {
		if isPermission(err) {
			return errNoData
		}
		return err
	}
	c.emitTimex(&t)
	return nil
}
