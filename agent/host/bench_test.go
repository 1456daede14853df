package host

import (
	"os"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"github.com/telltale-dev/telltale/samples"
)

func benchCollect(b *testing.B, root string) {
	c := New(Options{Root: root, Instance: "bench"})
	var batch samples.Batch
	now := time.Now()
	if err := c.Collect(now, &batch); err != nil {
		b.Logf("Collect: %v", err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		batch.Reset()
		_ = c.Collect(now, &batch)
	}
	b.ReportMetric(float64(len(batch.Series)), "series/op")
}

// BenchmarkCollect measures one collection cycle: on the fixture tree and
// on this machine's /proc and /sys.
func BenchmarkCollect(b *testing.B) {
	b.Run("fixture", func(b *testing.B) { benchCollect(b, fixtureRoot) })
	b.Run("real", func(b *testing.B) {
		if _, err := os.Stat("/proc/stat"); err != nil {
			b.Skip("no /proc")
		}
		benchCollect(b, "/")
	})
}

func BenchmarkParseStat(b *testing.B) {
	data := fixture(b, "proc/stat")
	var st statInfo
	var names interner
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := parseStat(data, &st, &names); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcfsStat is the same work done by github.com/prometheus/procfs,
// for comparison: why this package parses the files itself.
func BenchmarkProcfsStat(b *testing.B) {
	fs, err := procfs.NewFS(fixtureRoot + "/proc")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fs.Stat(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseMeminfo(b *testing.B) {
	data := fixture(b, "proc/meminfo")
	var es []memEntry
	var names interner
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if es, err = parseMeminfo(data, es, &names); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseDiskstats(b *testing.B) {
	data := fixture(b, "proc/diskstats")
	var ds []diskStat
	var names interner
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if ds, err = parseDiskstats(data, ds, &names); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseMountinfo(b *testing.B) {
	data := fixture(b, "proc/1/mountinfo")
	var ms []mount
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if ms, err = parseMountinfo(data, ms); err != nil {
			b.Fatal(err)
		}
	}
}
