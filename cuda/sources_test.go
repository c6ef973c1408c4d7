package cuda

import "embed"

// kernelSources are the kernel sources this test binary was built from.
// The tests that read sources (the manifest, the wait rule, the instance
// lists) read them here, so a test binary copied to a GPU machine checks
// its own sources from any working directory, not whatever checkout lies
// there.
//
//go:embed *.cu *.cuh Makefile
var kernelSources embed.FS
