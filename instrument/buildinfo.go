package instrument

import "runtime/debug"

// BuildVersion returns the running binary's version and commit from its Go
// build info, for telltale_build_info and for any binary that prints its
// version (the collector uses it too):
//
//   - version: the main module's version when the build carries one (a
//     tagged `go install mod@v1.2.3`, or the pseudo-version
//     v0.0.0-<time>-<rev> that `go build` stamps in a git clone); else
//     "devel+<12-hex revision>" when only vcs.revision is known (".dirty"
//     appended for a modified work tree); else "devel". `go run`, `go test`
//     and builds with -buildvcs=false (CI) carry no VCS info and so give
//     "devel": a development build, said as such rather than "unknown".
//   - commit: the first 12 hex digits of vcs.revision, else "unknown".
//
// Pass Options.Version/Commit (the demo's -version/-commit flags, or
// -ldflags -X in a release build) to name a release exactly.
func BuildVersion() (version, commit string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return versionOf(nil)
	}
	return versionOf(bi)
}

// versionOf is BuildVersion's pure part; bi may be nil.
func versionOf(bi *debug.BuildInfo) (version, commit string) {
	version, commit = "devel", "unknown"
	if bi == nil {
		return version, commit
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				commit = s.Value[:min(12, len(s.Value))]
			}
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	switch v := bi.Main.Version; {
	case v != "" && v != "(devel)":
		version = v
	case commit != "unknown":
		version = "devel+" + commit
		if modified {
			version += ".dirty"
		}
	}
	return version, commit
}
