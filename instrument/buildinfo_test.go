package instrument

import (
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	f := func(bi *debug.BuildInfo, wantVersion, wantCommit string) {
		t.Helper()
		v, c := versionOf(bi)
		if v != wantVersion || c != wantCommit {
			t.Fatalf("versionOf = %q, %q; want %q, %q", v, c, wantVersion, wantCommit)
		}
	}
	build := func(version string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/telltale-dev/telltale", Version: version}}
		for i := 0; i < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	const rev = "0a2f62d52daf79c312cd06522e18b4bd1601f510"
	// No build info at all.
	f(nil, "devel", "unknown")
	// go run / go test / -buildvcs=false: no VCS info.
	f(build("(devel)"), "devel", "unknown")
	f(build(""), "devel", "unknown")
	// go build in a git clone: Go stamps a pseudo-version and the revision.
	f(build("v0.0.0-20261207015138-0a2f62d52daf", "vcs.revision", rev, "vcs.modified", "false"),
		"v0.0.0-20261207015138-0a2f62d52daf", "0a2f62d52daf")
	// A tagged go install.
	f(build("v1.2.3"), "v1.2.3", "unknown")
	// Revision known but no module version.
	f(build("(devel)", "vcs.revision", rev), "devel+0a2f62d52daf", "0a2f62d52daf")
	f(build("(devel)", "vcs.revision", rev, "vcs.modified", "true"), "devel+0a2f62d52daf.dirty", "0a2f62d52daf")
	f(build("(devel)", "vcs.revision", "abc"), "devel+abc", "abc")
}

func TestBuildVersionOfTestBinary(t *testing.T) {
	// go test carries no VCS info: the answer is the honest "devel", never
	// "unknown" or empty.
	v, c := BuildVersion()
	if v == "" || v == "unknown" || c == "" {
		t.Fatalf("BuildVersion() = %q, %q; want a version (devel for a test binary) and a commit", v, c)
	}
}
