package main

import (
	"testing"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// TestMain removes the binaries the end-to-end tests built
// (collectortest.Build) when they are done.
func TestMain(m *testing.M) { collectortest.Main(m) }
