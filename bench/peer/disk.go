package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/telltale-dev/telltale/retry"
)

// DiskUsage returns the bytes the files under dir occupy on disk (allocated
// blocks, what du reports).
func DiskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while walking (a merge)
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cannot measure %s: %w", dir, err)
	}
	return total, nil
}

// Block is a persisted Prometheus TSDB block.
type Block struct {
	Dir     string
	MinTime int64 // ms
	MaxTime int64 // ms, exclusive
	Samples int64
	Series  int64
	Bytes   int64 // on disk: chunks, index, meta, tombstones
	// ChunkBytes and IndexBytes are the parts of Bytes in chunks/ and index.
	ChunkBytes, IndexBytes int64
}

// Blocks returns the persisted blocks of the Prometheus TSDB in dir (the
// subdirectories with a meta.json): what head compaction wrote.
func Blocks(dir string) ([]Block, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list TSDB directory: %w", err)
	}
	var out []Block
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		bd := filepath.Join(dir, e.Name())
		raw, err := os.ReadFile(filepath.Join(bd, "meta.json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // wal, chunks_head, a block being written (.tmp-for-creation)
		}
		if err != nil {
			return nil, err
		}
		var meta struct {
			MinTime int64 `json:"minTime"`
			MaxTime int64 `json:"maxTime"`
			Stats   struct {
				NumSamples int64 `json:"numSamples"`
				NumSeries  int64 `json:"numSeries"`
			} `json:"stats"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("block %s: bad meta.json: %w", bd, err)
		}
		size, err := DiskUsage(bd)
		if err != nil {
			return nil, err
		}
		chunks, err := DiskUsage(filepath.Join(bd, "chunks"))
		if err != nil {
			return nil, err
		}
		index, err := DiskUsage(filepath.Join(bd, "index"))
		if err != nil {
			return nil, err
		}
		out = append(out, Block{Dir: bd, MinTime: meta.MinTime, MaxTime: meta.MaxTime,
			Samples: meta.Stats.NumSamples, Series: meta.Stats.NumSeries, Bytes: size, ChunkBytes: chunks, IndexBytes: index})
	}
	return out, nil
}

// Compact brings the stored data into its compacted on-disk form and waits
// until the data directory stops changing (for up to timeout):
//   - Telltale and Prometheus cut a block from the head by themselves once the
//     head spans more than 3 h (1.5 × the 2 h block range); Compact waits for
//     that block.
//   - VictoriaMetrics merges parts in the background; Compact calls
//     /internal/force_flush and /internal/force_merge.
func (p *Process) Compact(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	switch p.Kind {
	case Telltale, Prometheus:
		for {
			bs, err := Blocks(p.DataDir)
			if err != nil {
				return err
			}
			if len(bs) > 0 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s cut no block within %v; does the data span more than 3 h?", p.Kind.Title(), timeout)
			}
			if err := retry.Sleep(ctx, 200*time.Millisecond); err != nil {
				return err
			}
		}
	case VictoriaMetrics:
		if err := p.Flush(ctx); err != nil {
			return err
		}
		if err := p.get(ctx, "/internal/force_merge", nil); err != nil {
			return fmt.Errorf("VictoriaMetrics force_merge: %w", err)
		}
	default:
		return fmt.Errorf("%s stores nothing to compact", p.Kind.Title())
	}
	// Merges, WAL checkpoints and the removal of merged parts finish in the
	// background: wait until the size holds still for 3 s.
	last, stable := int64(-1), 0
	for stable < 6 {
		n, err := DiskUsage(p.DataDir)
		if err != nil {
			return err
		}
		if n == last {
			stable++
		} else {
			stable = 0
		}
		last = n
		if time.Now().After(deadline) {
			return fmt.Errorf("%s data directory still changing after %v", p.Kind.Title(), timeout)
		}
		if err := retry.Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}
