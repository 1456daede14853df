package scenario

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"time"

	"github.com/telltale-dev/telltale/bench/load"
	"github.com/telltale-dev/telltale/bench/peer"
)

// fetchProfile saves a CPU profile of p taken over seconds (the collector
// serves net/http/pprof under /debug/pprof/, admin scope).
func fetchProfile(ctx context.Context, p *peer.Process, seconds int, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("cannot create -cpuprofile file: %w", err)
	}
	err = p.Get(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(seconds, 1)), f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot fetch the collector's CPU profile: %w", err)
	}
	return nil
}

// Profile runs remote-write ingestion of series series once more against
// Telltale, with samples samples in the measured pass, while a CPU profile
// of the collector is taken into file over the measured pass (its length is
// estimated from the rate results show for that scenario). It returns the
// scenario it ran, the run and the profile summarised by `go tool pprof -top` (flat and
// cumulative).
func Profile(ctx context.Context, env *Env, series, samples int, results []Result, file string) (*Scenario, Result, string, error) {
	sz := env.Sizes
	sz.IngestSamples = samples
	s := ingestScenario(sz, series, load.RemoteWrite, nil)
	var rates []float64
	for _, r := range results {
		if r.Scenario == s.Name && r.System == peer.Telltale && r.Err == "" && r.Values["samples_per_s"] > 0 {
			rates = append(rates, r.Values["samples_per_s"])
		}
	}
	seconds := 5
	if len(rates) > 0 {
		seconds = int(math.Ceil(float64(samples) / Quantile(rates, 0.5)))
	}
	s.Name += "-profile" // its own streams
	env.ProfileFile, env.ProfileSeconds = file, max(seconds, 1)
	defer func() { env.ProfileFile = "" }()
	r := s.Run(ctx, env, peer.Telltale, -1)
	if r.Err != "" {
		return &s, r, "", fmt.Errorf("profiled run: %s", r.Err)
	}
	var out []byte
	for _, cum := range []bool{false, true} {
		args := []string{"tool", "pprof", "-top", "-nodecount=25"}
		if cum {
			args = append(args, "-cum")
		}
		args = append(args, env.Bins[peer.Telltale], file)
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		b, err := exec.CommandContext(cctx, "go", args...).Output()
		cancel()
		if err != nil {
			return &s, r, "", fmt.Errorf("go tool pprof -top %s: %w", file, err)
		}
		out = append(out, b...)
		out = append(out, '\n')
	}
	return &s, r, string(out), nil
}
