package changelog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// searchLog writes a change log of 100k changes into dir: messages of
// 6-20 words drawn (Zipf) from a 5,000-word vocabulary, so common words
// match tens of thousands of changes and rare ones a few; one change
// holds "checkout timeout".
func searchLog(ctx context.Context, dir string) (*Log, error) {
	l, err := OpenLog(ctx, filepath.Join(dir, "changes.db"))
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rng, 1.1, 1, 4999)
	word := func() string { return fmt.Sprintf("w%d", zipf.Uint64()) }
	kinds := changes.Kinds
	const n, batch = 100_000, 5_000
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i += batch {
		err := l.Update(ctx, t0, func(tx *Tx) error {
			for j := i; j < i+batch; j++ {
				words := make([]string, 6+rng.IntN(15))
				for k := range words {
					words[k] = word()
				}
				if j == n/2 {
					words = append(words, "checkout", "timeout") // the needle
				}
				c := changes.Change{ID: fmt.Sprintf("c%06d", j), Kind: kinds[j%len(kinds)], Service: fmt.Sprintf("svc%d", j%40),
					Env: []string{"prod", "staging"}[j%2], Who: fmt.Sprintf("user%d", j%200), Message: strings.Join(words, " "),
					Time: t0.Add(time.Duration(j) * time.Minute), Status: changes.StatusSuccess}
				if err := tx.Insert(ctx, &c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}

// BenchmarkSearch100k measures GET /api/v1/changes?q=... as the log runs
// it (FTS5 match, newest first, limit 100) over 100k changes; ms/search is
// the figure to read.
func BenchmarkSearch100k(b *testing.B) {
	l, err := searchLog(b.Context(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for _, bc := range []struct {
		name, text, service string
	}{
		{"needle", "checkout timeout", ""}, // one change
		{"rare", "w4000", ""},              // a few changes
		{"common", "w1", ""},               // tens of thousands: the newest 100
		{"two-common", "w1 w2", ""},        // an AND of two common words
		{"prefix", "w49", ""},              // a prefix of a hundred words
		{"filtered", "w3", "svc7"},         // words and a service filter
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := changes.Filter{Text: bc.text, Service: bc.service, Limit: changes.DefaultListLimit}
			var got int
			for b.Loop() {
				list, err := l.List(b.Context(), f)
				if err != nil {
					b.Fatal(err)
				}
				got = len(list)
			}
			if bc.name == "needle" && got != 1 {
				b.Fatalf("needle: got %d changes; want 1", got)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/search")
			b.ReportMetric(float64(got), "results")
		})
	}
}
