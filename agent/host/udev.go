package host

import (
	"bytes"
	"strconv"
)

// udev keeps what udevd records about a block device in
// /run/udev/data/b<major>:<minor> ("E:KEY=value" lines for its
// properties), which node_exporter's diskstats collector turns into labels
// and series. The files change when a device does; the Collector reads
// them every cycle but parses one again only when its bytes changed.

// The udev properties node_exporter uses.
const (
	udevDMLVLayer              = "DM_LV_LAYER"
	udevDMLVName               = "DM_LV_NAME"
	udevDMName                 = "DM_NAME"
	udevDMUUID                 = "DM_UUID"
	udevDMVGName               = "DM_VG_NAME"
	udevIDATA                  = "ID_ATA"
	udevIDATARotationRateRPM   = "ID_ATA_ROTATION_RATE_RPM"
	udevIDATAWriteCache        = "ID_ATA_WRITE_CACHE"
	udevIDATAWriteCacheEnabled = "ID_ATA_WRITE_CACHE_ENABLED"
	udevIDFSType               = "ID_FS_TYPE"
	udevIDFSUsage              = "ID_FS_USAGE"
	udevIDFSUUID               = "ID_FS_UUID"
	udevIDFSVersion            = "ID_FS_VERSION"
	udevIDModel                = "ID_MODEL"
	udevIDPath                 = "ID_PATH"
	udevIDRevision             = "ID_REVISION"
	udevIDSerial               = "ID_SERIAL"
	udevIDSerialShort          = "ID_SERIAL_SHORT"
	udevIDWWN                  = "ID_WWN"
	udevSCSIIdentSerial        = "SCSI_IDENT_SERIAL"
)

// udevATA are the ATA properties node_exporter reports as series.
var udevATA = [...]struct{ key, name string }{
	{udevIDATAWriteCache, "node_disk_ata_write_cache"},
	{udevIDATAWriteCacheEnabled, "node_disk_ata_write_cache_enabled"},
	{udevIDATARotationRateRPM, "node_disk_ata_rotation_rate_rpm"},
}

// udevProps is the parsed properties of one device.
type udevProps map[string]string

func (u udevProps) get(k string) string { return u[k] }

// serial is node_exporter's serial label: SCSI_IDENT_SERIAL, else
// ID_SERIAL_SHORT, else ID_SERIAL (virtio).
func (u udevProps) serial() string {
	for _, k := range [...]string{udevSCSIIdentSerial, udevIDSerialShort, udevIDSerial} {
		if s := u[k]; s != "" {
			return s
		}
	}
	return ""
}

func (u udevProps) float(k string) (float64, bool) {
	s, ok := u[k]
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// parseUdevData parses a udev database file: the "E:KEY=value" lines are
// the device's properties; other lines (S: links, I: ...) are skipped.
func parseUdevData(data []byte) udevProps {
	u := udevProps{}
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		kv, ok := bytes.CutPrefix(line, []byte("E:"))
		if !ok {
			continue
		}
		if k, v, ok := bytes.Cut(kv, []byte("=")); ok {
			u[string(k)] = string(v)
		}
	}
	return u
}

// udevCache holds each device's udev file as last parsed.
type udevCache struct {
	devs map[string]*udevEntry // by major:minor
	seen uint64                // cycle counter, for eviction
}

type udevEntry struct {
	raw   []byte
	props udevProps
	seen  uint64
}

// udevInfo returns the udev properties of d (none when udev keeps no data
// about it, or none is readable).
func (c *Collector) udevInfo(d *diskStat) udevProps {
	data, err := c.read(c.path("/run/udev/data/b", d.major, ":", d.minor))
	if err != nil {
		return nil
	}
	u := &c.udev
	if u.devs == nil {
		u.devs = make(map[string]*udevEntry)
	}
	var kb [24]byte
	key := append(append(append(kb[:0], d.major...), ':'), d.minor...)
	e := u.devs[string(key)]
	if e == nil {
		e = &udevEntry{}
		u.devs[string(key)] = e
	}
	e.seen = u.seen
	if e.props == nil || !bytes.Equal(e.raw, data) {
		e.raw = append(e.raw[:0], data...)
		e.props = parseUdevData(data)
	}
	return e.props
}

// evict forgets devices that were not seen this cycle.
func (u *udevCache) evict() {
	for k, e := range u.devs {
		if e.seen != u.seen {
			delete(u.devs, k)
		}
	}
}
