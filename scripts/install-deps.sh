#!/usr/bin/env bash
# Installs the Debian packages Periscope builds and tests with, when any is missing. Idempotent: a
# machine that has them all is left alone. Needs root (or sudo) on a machine that lacks some.
set -euo pipefail

packages=(
  clang-16 llvm-16      # BPF C compiler (15+ for CO-RE type matches), llvm-strip
  libbpf-dev libelf-dev zlib1g-dev pkg-config  # the native binding links the system libbpf
  bpftool               # vmlinux.h and BTF dumps for the code generator
  make gcc g++ python3  # node-gyp; cc for the layout and bits tests
  prometheus            # promtool check metrics, in tests
  iproute2 procps util-linux  # tests: namespaces, ps, taskset, setpriv
  runc busybox-static   # tests: a real container on the test node; busybox is also the matrix's initramfs
  qemu-system-x86 xz-utils curl  # the QEMU kernel matrix (test/kernels): boot, unpack modules, fetch 5.10
  openssl               # tests: a throwaway CA and server certificate for the HTTPS API
  nftables              # network tests: black holes, random loss, a kube-proxy style DNAT for a ClusterIP
  dnsmasq-base          # network tests: a real DNS server in a test pod
  nginx-light wrk       # bench: overhead of the agent on a saturated web server
  libbpf-tools          # bench: tcplife, the reference for the connection storm
  clickhouse-server     # the hub's store past one machine: its test suite runs against a real server
  chromium fonts-dejavu-core  # the UI's tests and benchmark: a real headless browser (playwright-core drives it)
  # L7 tests: real servers the protocol parsers are held to (test/servers.ts); the tests start their own
  # instances on private ports and temp dirs, never the packages' system services
  libnginx-mod-http-echo  # nginx routes with known latencies (echo_sleep)
  postgresql-15         # initdb, postgres, pgbench (-M prepared: the extended protocol); psql comes with it
  redis-server redis-tools  # redis-cli for INFO commandstats, redis-benchmark -P 16 for pipelining
  python3-grpcio        # a gRPC server and client of the test's own (generic handlers, no codegen)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
