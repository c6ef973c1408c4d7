#!/usr/bin/env bash
# Builds and starts the Brief desktop app (first build: about 5 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p bin
go build -o bin/brief ./cmd/app
exec bin/brief "$@"
