package host

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/telltale-dev/telltale/agent/relabel"
	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/samples"
)

// The textfile collector reads the *.prom files of Options.TextfileDir
// (Prometheus text format, as node_exporter's textfile collector reads
// them: what cron jobs and batch scripts write for the host). A file that
// cannot be read or parsed, or whose samples carry timestamps, is skipped
// whole and sets node_textfile_scrape_error to 1; the other files still
// count. Every good file gets node_textfile_mtime_seconds{file}.
//
// The files' series get the host's labels as a scraped target's series
// get the target's in Prometheus (honor_labels false): instance, job and
// Options.Labels win, and a file label they displace is kept as
// exported_<name>.

// errPartial marks an error of part of a collector's input (one bad
// textfile): Collect returns it, but the collector still counts as
// successful, as in node_exporter.
var errPartial = errors.New("partial")

type textfileState struct {
	bufs    [][]byte // one read buffer per good file; the batch aliases them
	batch   samples.Batch
	parser  promtext.Parser
	b       relabel.Builder
	sorted  []samples.Label
	merged  []samples.Label
	files   map[string][]string // family -> files it came from, per cycle
	mtimes  []textfileMtime
	entries []os.DirEntry
}

type textfileMtime struct {
	path  string
	mtime float64
}

// noTimestamp marks samples without a timestamp of their own.
const noTimestamp = math.MinInt64

// parseTextfile parses one *.prom file into dst (reset first). It fails
// when the text does not parse, when a sample has a timestamp (node_exporter
// refuses those: the file would show stale data as fresh), or when a series
// repeats a label name.
func parseTextfile(data []byte, p *promtext.Parser, dst *samples.Batch) error {
	dst.Reset()
	if err := p.Parse(data, noTimestamp, dst); err != nil {
		return err
	}
	for i := range dst.Series {
		s := &dst.Series[i]
		for _, x := range dst.SeriesSamples(s) {
			if x.T != noTimestamp {
				return fmt.Errorf("series %s has a timestamp: textfiles must not carry them (node_exporter skips such files too)", dst.Name(s))
			}
		}
		ls := dst.SeriesLabels(s)
		for j := range ls {
			for k := j + 1; k < len(ls); k++ {
				if ls[j].Name == ls[k].Name {
					return fmt.Errorf("series %s has label %q twice", dst.Name(s), ls[j].Name)
				}
			}
		}
	}
	return nil
}

// readFileLimit reads path into buf[:0], failing past limit bytes.
func readFileLimit(path string, buf []byte, limit int) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf[:0], nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return buf[:0], nil, err
	}
	if !fi.Mode().IsRegular() {
		return buf[:0], nil, fmt.Errorf("%s is not a regular file", path)
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf[:0], nil, fmt.Errorf("%s is larger than %d bytes: split it or raise the limit", path, limit)
		}
		if err == io.EOF {
			return buf, fi, nil
		}
		if err != nil {
			return buf[:0], nil, err
		}
	}
}

func (c *Collector) collectTextfile() error {
	s := &c.textfile
	if c.textfileMeta == nil {
		c.textfileMeta = make(map[string]samples.Metadata)
		s.files = make(map[string][]string)
	}
	clear(c.textfileMeta)
	clear(s.files)
	s.mtimes = s.mtimes[:0]
	dir := c.opts.TextfileDir
	if dir == "" {
		c.add("node_textfile_scrape_error", 0)
		return nil
	}
	var errs []error
	entries, err := os.ReadDir(dir)
	if err != nil {
		errs = append(errs, fmt.Errorf("textfile directory: %w", err))
	}
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".prom") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if n == len(s.bufs) {
			s.bufs = append(s.bufs, nil)
		}
		data, fi, err := readFileLimit(path, s.bufs[n], c.opts.TextfileMaxBytes)
		s.bufs[n] = data
		if err == nil {
			err = parseTextfile(data, &s.parser, &s.batch)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("textfile %s: %w", path, err))
			continue
		}
		n++ // the batch aliases this buffer: keep it until the next cycle
		for _, m := range s.batch.Metadata {
			if old, ok := c.textfileMeta[m.Name]; ok {
				if m.Help != "" && old.Help != "" && m.Help != old.Help {
					errs = append(errs, fmt.Errorf("textfile %s: metric %s has HELP %q, another file gave %q (the first is kept)", path, m.Name, m.Help, old.Help))
				}
				if old.Help == "" && m.Help != "" {
					old.Help = strings.Clone(m.Help)
					c.textfileMeta[m.Name] = old
				}
				continue
			}
			m.Name, m.Help, m.Type, m.Unit = strings.Clone(m.Name), strings.Clone(m.Help), strings.Clone(m.Type), strings.Clone(m.Unit)
			c.textfileMeta[m.Name] = m
			s.files[m.Name] = append(s.files[m.Name], path)
		}
		c.emitTextfile(&s.batch)
		s.mtimes = append(s.mtimes, textfileMtime{path: path, mtime: float64(fi.ModTime().Unix())})
	}
	// node_exporter's HELP for families a file left without one.
	for name, m := range c.textfileMeta {
		if m.Help == "" {
			m.Help = "Metric read from " + strings.Join(s.files[name], ", ")
			c.textfileMeta[name] = m
		}
	}
	for _, m := range s.mtimes {
		c.add("node_textfile_mtime_seconds", m.mtime, l("file", m.path))
	}
	errVal := 0.0
	if len(errs) > 0 {
		errVal = 1
	}
	c.add("node_textfile_scrape_error", errVal)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", errPartial, errors.Join(errs...))
	}
	return nil
}

// emitTextfile appends the series of one parsed file with the host's
// labels merged in.
func (c *Collector) emitTextfile(b *samples.Batch) {
	s := &c.textfile
	for i := range b.Series {
		sr := &b.Series[i]
		s.sorted = append(s.sorted[:0], b.SeriesLabels(sr)...)
		slices.SortFunc(s.sorted, func(x, y samples.Label) int { return strings.Compare(x.Name, y.Name) })
		s.b.Reset(s.sorted)
		s.b.MergeTarget(c.common, false)
		s.merged = s.b.Labels(s.merged[:0])
		name := ""
		c.dst.StartSeries(nil)
		for _, lb := range s.merged {
			if lb.Name == "__name__" {
				name = lb.Value
			}
			c.dst.AddLabel(lb.Name, lb.Value)
		}
		for _, x := range b.SeriesSamples(sr) {
			c.dst.AddSample(c.ts, x.V)
		}
		if name != c.lastName {
			c.lastName = name
			c.emitted[name] = struct{}{}
		}
	}
}
