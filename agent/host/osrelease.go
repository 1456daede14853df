package host

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// osRelease is what node_exporter's os collector reports of os-release(5).
type osRelease struct {
	// labels of node_os_info, in the order of osInfoLabels
	info          [len(osInfoLabels)]string
	version       float64 // major.minor of VERSION_ID; 0 when it has none
	supportEnd    float64 // SUPPORT_END as a Unix time
	hasSupportEnd bool
}

// osInfoLabels are node_os_info's labels (sorted) and the os-release keys
// they come from.
var osInfoLabels = [...]struct{ label, key string }{
	{"build_id", "BUILD_ID"}, {"id", "ID"}, {"id_like", "ID_LIKE"}, {"image_id", "IMAGE_ID"},
	{"image_version", "IMAGE_VERSION"}, {"name", "NAME"}, {"pretty_name", "PRETTY_NAME"},
	{"variant", "VARIANT"}, {"variant_id", "VARIANT_ID"}, {"version", "VERSION"},
	{"version_codename", "VERSION_CODENAME"}, {"version_id", "VERSION_ID"},
}

var osVersionRe = regexp.MustCompile(`^[0-9]+\.?[0-9]*`)

// parseOSRelease parses an os-release file: KEY=value lines, values bare,
// 'single-quoted' (literal) or "double-quoted" (backslash escapes), blank
// lines and # comments skipped, as the shell reads them.
func parseOSRelease(data []byte) (osRelease, error) {
	var r osRelease
	var supportEnd string
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data = nextLine(data)
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		eq := bytes.IndexByte(line, '=')
		if eq <= 0 || !validNameBytes(line[:eq]) {
			return r, fmt.Errorf("parse os-release line %d %q: want KEY=value", n, line)
		}
		key := string(line[:eq])
		val, err := unquoteShell(line[eq+1:])
		if err != nil {
			return r, fmt.Errorf("parse os-release line %d %q: %w", n, line, err)
		}
		for i, li := range osInfoLabels {
			if li.key == key {
				r.info[i] = val
			}
		}
		if key == "SUPPORT_END" {
			supportEnd = val
		}
	}
	if mm := osVersionRe.FindString(r.info[11]); mm != "" {
		v, err := strconv.ParseFloat(mm, 64)
		if err != nil {
			return r, fmt.Errorf("parse os-release VERSION_ID %q: %w", r.info[11], err)
		}
		r.version = v
	}
	if supportEnd != "" {
		t, err := time.Parse(time.DateOnly, supportEnd)
		if err != nil {
			return r, fmt.Errorf("parse os-release SUPPORT_END %q: want YYYY-MM-DD", supportEnd)
		}
		r.supportEnd, r.hasSupportEnd = float64(t.Unix()), true
	}
	return r, nil
}

// unquoteShell returns the value of a shell assignment's right-hand side.
func unquoteShell(b []byte) (string, error) {
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\'':
			j := bytes.IndexByte(b[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("unterminated single quote")
			}
			sb.Write(b[i+1 : i+1+j])
			i += j + 1
		case '"':
			i++
			for ; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' && i+1 < len(b) && strings.IndexByte("$`\"\\\n", b[i+1]) >= 0 {
					i++
				}
				sb.WriteByte(b[i])
			}
			if i >= len(b) {
				return "", fmt.Errorf("unterminated double quote")
			}
		case '\\':
			if i+1 < len(b) {
				i++
				sb.WriteByte(b[i])
			}
		case ' ', '\t':
			// An unquoted blank ends the value; a comment may follow.
			if rest := bytes.TrimSpace(b[i:]); len(rest) > 0 && rest[0] != '#' {
				return "", fmt.Errorf("unquoted blank in value")
			}
			return sb.String(), nil
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String(), nil
}

// osReleaseState caches the parsed os-release; the file is read every
// cycle (a few hundred bytes) but parsed only when it changed.
type osReleaseState struct {
	raw []byte
	rel osRelease
	err error
}

// collectOSRelease reports node_os_info and node_os_version from
// Root/etc/os-release, else Root/usr/lib/os-release.
func (c *Collector) collectOSRelease() error {
	data, err := c.read(c.path("/etc/os-release"))
	if err != nil && isNotExist(err) {
		data, err = c.read(c.path("/usr/lib/os-release"))
	}
	if err != nil {
		if isNotExist(err) {
			return errNoData
		}
		return err
	}
	s := &c.osRel
	if s.raw == nil || !bytes.Equal(data, s.raw) {
		s.raw = append(s.raw[:0], data...)
		s.rel, s.err = parseOSRelease(data)
	}
	if s.err != nil {
		return s.err
	}
	r := &s.rel
	c.add("node_os_info", 1,
		l("build_id", r.info[0]), l("id", r.info[1]), l("id_like", r.info[2]), l("image_id", r.info[3]),
		l("image_version", r.info[4]), l("name", r.info[5]), l("pretty_name", r.info[6]),
		l("variant", r.info[7]), l("variant_id", r.info[8]), l("version", r.info[9]),
		l("version_codename", r.info[10]), l("version_id", r.info[11]))
	if r.version > 0 {
		c.add("node_os_version", r.version, l("id", r.info[1]), l("id_like", r.info[2]), l("name", r.info[5]))
	}
	if r.hasSupportEnd {
		c.add("node_os_support_end_timestamp_seconds", r.supportEnd)
	}
	return nil
}
