#!/usr/bin/env bash
# Runs Brief's checks and tests. GPU tests skip without an NVIDIA GPU; tests
# that need ../shared/testdata (or $BRIEF_TESTDATA) skip where it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:" >&2; echo "$unformatted" >&2; exit 1
fi
go vet ./...
go build ./...            # the desktop app included: proves the cgo/GL build works
go test -count=1 ./...
go test -count=1 -race ./gui/...
