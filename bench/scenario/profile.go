package scenario

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"time"

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

// Profile runs scenario s once more against Telltale while a CPU profile of
// the collector is taken into file, covering the measured pass (its length
// is estimated from results). It returns the profile summarised by
// `go tool pprof -top` (flat and cumulative).
func Profile(ctx context.Context, env *Env, s *Scenario, results []Result, file string) (Result, string, error) {
	var secs []float64
	for _, r := range results {
		if r.Scenario == s.Name && r.System == peer.Telltale && r.Err == "" && r.Values["samples_per_s"] > 0 {
			secs = append(secs, float64(r.Sent)/r.Values["samples_per_s"])
		}
	}
	seconds := 5
	if len(secs) > 0 {
		seconds = int(math.Ceil(slices.Min(secs)))
	}
	env.ProfileFile, env.ProfileSeconds = file, max(seconds, 1)
	defer func() { env.ProfileFile = "" }()
	r := s.Run(ctx, env, peer.Telltale, -1)
	if r.Err != "" {
		return r, "", fmt.Errorf("profiled run: %s", r.Err)
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
			return r, "", fmt.Errorf("go tool pprof -top %s: %w", file, err)
		}
		out = append(out, b...)
		out = append(out, '\n')
	}
	return r, string(out), nil
}
