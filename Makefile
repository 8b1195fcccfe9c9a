# earlymod entry points. `make` builds out/earlymod; `make test` installs
# what the tests need (scripts/setup.sh) and runs every test; `make demo` is
# the main job; `make bench` measures against kmod.
CARGO ?= cargo
# fuzz-smoke reads PIPESTATUS.
SHELL := /bin/bash
CACHE ?= $(or $(EARLYMOD_CACHE),/var/cache/earlymod)
K612 = $(CACHE)/k612
export EARLYMOD_CACHE := $(CACHE)

.PHONY: all setup test unit difftest lint bench demo clean FORCE

# The early-boot binary: static, no libc (origin + rustix), size-optimised.
STATIC_FLAGS = -C target-feature=+crt-static -C relocation-model=static
STATIC_BUILD = RUSTFLAGS="$(STATIC_FLAGS)" $(CARGO) build --locked -p earlymod --bin earlymod-static

all: out/earlymod out/earlymod-host out/earlymod-static out/earlymod-tiny out/earlymod-pack

# The programs of examples/ (std, on the public API), built static
# (glibc's static libraries): boottest boots out/example-pid1 as /init.
.PHONY: examples
examples: out/example-pid1 out/example-agent
out/example-pid1 out/example-agent: FORCE
	RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=true $(CARGO) build --locked --release -p earlymod-examples --target x86_64-unknown-linux-gnu --target-dir target/examples
	@mkdir -p out
	@cp target/examples/x86_64-unknown-linux-gnu/release/$(subst out/example-,,$@) $@
	@echo "$@: $$(stat -c %s $@) bytes, $$(wc -l < examples/$(subst out/example-,,$@).rs) lines"

# Everything: every applet, PID 1, the gzip/xz/zstd decoders.
out/earlymod-static: FORCE
	$(STATIC_BUILD) --profile static --features static-bin --target-dir target/static
	@mkdir -p out
	@cp target/static/static/earlymod-static $@
	@echo "$@: $$(stat -c %s $@) bytes, $$(file -b $@ | cut -d, -f1-4)"

# Tiny: PID 1 + modprobe/insmod (modprobe.d, the kernel command line);
# the kernel decompresses or nothing does. Any set of features composes the
# same way (applets/Cargo.toml; `make size` prints what each costs).
out/earlymod-tiny: FORCE
	$(STATIC_BUILD) --profile static-tiny --no-default-features --features static-bin,init,config,cmdline --target-dir target/static-tiny
	@mkdir -p out
	@cp target/static-tiny/static-tiny/earlymod-static $@
	@echo "$@: $$(stat -c %s $@) bytes"

# Every static build's size, its ceiling and goal, its largest contributors
# by crate, and each feature's cost (scripts/size.py).
.PHONY: size size-check
size:
	python3 scripts/size.py --features
size-check:
	python3 scripts/size.py --check --no-contributors

# The one binary with every applet: the static build (modinfo included;
# cli/tests/modinfo_diff.rs checks it against kmod).
out/earlymod: out/earlymod-static
	@cp out/earlymod-static $@
	@echo "$@: $$(stat -c %s $@) bytes (copy of out/earlymod-static)"

# aarch64 and riscv64 (issue 14): the same static, libc-free builds with
# Debian trixie's rustc/cargo 1.85 and its libstd-rust-dev rlibs for each
# target (rustup cannot add targets here), linked by lld through
# scripts/cc-lld; scripts/cross.sh fetches the toolchain (make setup).
CROSS = $(CACHE)/rust-cross/bin
CROSS_ENV = RUSTC=$(CROSS)/rustc RUSTDOC=$(CROSS)/rustdoc RUSTFLAGS="$(STATIC_FLAGS)" \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=$(CROSS)/cc-lld \
	CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER=$(CROSS)/cc-lld
CROSS_BUILD = $(CROSS_ENV) $(CROSS)/cargo build --locked -q -p earlymod --bin earlymod-static --target-dir target/cross
TINY_FEATURES = static-bin,init,config,cmdline
.PHONY: cross
cross: out/aarch64/earlymod out/aarch64/earlymod-tiny out/riscv64/earlymod out/riscv64/earlymod-tiny
out/aarch64/earlymod out/riscv64/earlymod: FORCE
	$(CROSS_BUILD) --profile static --features static-bin --target $(if $(findstring aarch64,$@),aarch64,riscv64gc)-unknown-linux-gnu
	@mkdir -p $(@D)
	@cp target/cross/$(if $(findstring aarch64,$@),aarch64,riscv64gc)-unknown-linux-gnu/static/earlymod-static $@
	@echo "$@: $$(stat -c %s $@) bytes, $$(file -b $@ | cut -d, -f1-4)"
out/aarch64/earlymod-tiny out/riscv64/earlymod-tiny: FORCE
	$(CROSS_BUILD) --profile static-tiny --no-default-features --features $(TINY_FEATURES) --target $(if $(findstring aarch64,$@),aarch64,riscv64gc)-unknown-linux-gnu
	@mkdir -p $(@D)
	@cp target/cross/$(if $(findstring aarch64,$@),aarch64,riscv64gc)-unknown-linux-gnu/static-tiny/earlymod-static $@
	@echo "$@: $$(stat -c %s $@) bytes"

# The other architectures, and Rust 1.85. `cargo check` of the workspace
# with Debian's rustc 1.85. Every query of the differential suite on
# Debian's arm64 and riscv64 trees (the index format is the same on every
# architecture, and so must the answers be), then the cross builds under
# qemu-user (no binfmt_misc here: a wrapper runs each binary through
# qemu-ARCH-static): each on every 10th query of its own machine's tree.
KARM64 = $(CACHE)/karm64
KRISCV64 = $(CACHE)/kriscv64
.PHONY: crosstest
crosstest: setup cross out/earlymod-pack out/earlymod-static
	@echo "== the whole workspace, every target, on Debian's Rust 1.85 (the rust-version)"
	RUSTC=$(CROSS)/rustc RUSTDOC=$(CROSS)/rustdoc $(CROSS)/cargo check --locked -q --workspace --all-targets \
	  --target-dir target/rust185
	@echo "== difftest on the arm64 and riscv64 trees"
	$(CARGO) run --locked --release -q -p earlymod-tests --bin difftest -- --earlymod out/earlymod-static \
	  --tree arm64=$(KARM64)/root:$$(cat $(KARM64)/kver) --tree riscv64=$(KRISCV64)/root:$$(cat $(KRISCV64)/kver)
	@mkdir -p target/cross
	@for a in aarch64 riscv64; do \
	  printf '#!/bin/sh\nexec qemu-%s-static %s/out/%s/earlymod "$$@"\n' $$a $(CURDIR) $$a > target/cross/run-$$a; \
	  chmod +x target/cross/run-$$a; \
	done
	@echo "== difftest, the aarch64 build under qemu-aarch64-static, arm64 tree"
	$(CARGO) run --locked --release -q -p earlymod-tests --bin difftest -- --earlymod target/cross/run-aarch64 \
	  --tree arm64=$(KARM64)/root:$$(cat $(KARM64)/kver) --sample 10
	@echo "== difftest, the riscv64 build under qemu-riscv64-static, riscv64 tree"
	$(CARGO) run --locked --release -q -p earlymod-tests --bin difftest -- --earlymod target/cross/run-riscv64 \
	  --tree riscv64=$(KRISCV64)/root:$$(cat $(KRISCV64)/kver) --sample 10
	@echo "== earlymod-pack: the x86_64 build refused for the arm64 kernel, the aarch64 one packed"
	@! out/earlymod-pack -b $(KARM64)/root -k $$(cat $(KARM64)/kver) -c tests/pack/boot.conf \
	    -o target/cross/arm64.img --earlymod out/earlymod 2> target/cross/refused.err
	@grep -q "built for x86_64, but kernel .* is aarch64" target/cross/refused.err && cat target/cross/refused.err
	out/earlymod-pack -b $(KARM64)/root -k $$(cat $(KARM64)/kver) -c tests/pack/boot.conf \
	    -o target/cross/arm64.img --earlymod out/aarch64/earlymod

# The same applets on std (host build, for tests and comparison).
out/earlymod-host: FORCE
	$(CARGO) build --release --locked -p earlymod-cli
	@mkdir -p out
	@cp target/release/earlymod $@
	@echo "$@: $$(stat -c %s $@) bytes"

# The initramfs builder (host tool, std): see config/pack/README.md.
out/earlymod-pack: FORCE
	$(CARGO) build --release --locked -p earlymod-initrd --bin earlymod-pack
	@mkdir -p out
	@cp target/release/earlymod-pack $@
	@echo "$@: $$(stat -c %s $@) bytes"

setup:
	bash scripts/setup.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked -p earlymod --features static-bin --bins -- -D warnings
	$(CARGO) clippy --locked -p earlymod --no-default-features --features static-bin,init,config,cmdline --bins -- -D warnings
	$(CARGO) clippy --locked -p earlymod --no-default-features --features static-bin --bins -- -D warnings
	$(CARGO) clippy --locked -p earlymod --no-default-features --features static-bin,coldplug,xz --bins -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --no-deps --workspace -q
	python3 scripts/public_api.py --check

# Rewrites api/*.txt, the recorded public API (make lint checks it): run it
# when a change to the API is meant, and commit the diff.
.PHONY: api
api:
	python3 scripts/public_api.py

unit:
	$(CARGO) test --locked --workspace --release

# Every query against the static binary, with kmod 30 and with kmod 34 as
# the reference; a sample against the host build; the tiny build against
# kmod 30 (without the symbols category: it has no modinfo, and says so)
# and the hostile suite (its modinfo cases skipped).
difftest: setup all
	$(CARGO) run --locked --release -q -p earlymod-tests --bin difftest -- --earlymod out/earlymod-static
	$(CARGO) run --locked --release -q -p earlymod-tests --bin difftest -- --earlymod out/earlymod-static --kmod34
	$(CARGO) run --locked --release -q -p earlymod-tests --bin difftest -- --earlymod out/earlymod-host --sample 10
	$(CARGO) run --locked --release -q -p earlymod-tests --bin packdiff -- --pack out/earlymod-pack --earlymod out/earlymod
	$(CARGO) run --locked --release -q -p earlymod-tests --bin hostile -- --earlymod out/earlymod-static
	$(CARGO) run --locked --release -q -p earlymod-tests --bin difftest -- --earlymod out/earlymod-tiny
	$(CARGO) run --locked --release -q -p earlymod-tests --bin hostile -- --earlymod out/earlymod-tiny
	$(CARGO) run --locked --release -q -p earlymod-tests --bin kmodcases -- --earlymod out/earlymod-static

test: setup lint unit size-check difftest crosstest fuzz-smoke vmtest

# cargo fuzz (nightly): every target for FUZZ_SMOKE_SECONDS in `make test`,
# FUZZ_SECONDS each with `make fuzz`. Seeds and corpora live in $(FUZZ_WORK).
FUZZ_TARGETS = index config cpio blkid decompress zstd_diff elf resolve
FUZZ_WORK ?= /tmp/earlymod-fuzz
FUZZ_SMOKE_SECONDS ?= 30
FUZZ_SECONDS ?= 1200
export FUZZ_WORK
.PHONY: fuzz fuzz-smoke
fuzz-smoke: setup out/earlymod-pack
	bash fuzz/seed.sh
	$(CARGO) +nightly fuzz build -O
	@for t in $(FUZZ_TARGETS); do \
	  $(CARGO) +nightly fuzz run -O $$t $(FUZZ_WORK)/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SMOKE_SECONDS) -rss_limit_mb=2048 -timeout=10 2>&1 \
	    | grep -E '^Done|SUMMARY|panicked|ERROR|crash-' ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done
fuzz: setup out/earlymod-pack
	bash fuzz/seed.sh
	@for t in $(FUZZ_TARGETS); do \
	  $(CARGO) +nightly fuzz run -O $$t $(FUZZ_WORK)/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 || exit 1; \
	done

# Every benchmark in one run, one at a time (bench/report.py): resolution vs
# kmod (time, callgrind instructions, peak RSS), module-set loading in QEMU
# vs kmod and busybox, packing vs mkinitramfs/dracut, time to root vs the
# busybox+kmod image, binary sizes. Writes and prints
# bench/REPORT.md (BENCH_ARGS=--quick: one round each, for trying it).
bench: setup all cross
	bash scripts/setup.sh bench
	@rm -f target/syscalls.json
	-python3 qemu/syscalls.py --earlymod out/earlymod --json target/syscalls.json
	python3 bench/report.py --syscalls target/syscalls.json $(BENCH_ARGS)

# The main job: resolve the default embedded module set on the real Debian
# 6.12 tree and print the load plan, exactly as kmod would; then pack it
# with earlymod as PID 1, boot it under QEMU and print the boot report.
demo: setup all
	@root=$(K612)/root; kver=$$(cat $(K612)/kver); \
	mods=$$(grep -v '^#' config/default-modules.conf | tr '\n' ' '); \
	echo "== earlymod modprobe -C config/modprobe.d -D -a <default set> on Linux $$kver"; \
	out/earlymod-static modprobe -d $$root -S $$kver -C config/modprobe.d -D -a $$mods
	@echo "== earlymod-pack config/pack/default.conf (the set, the boot drivers, earlymod as /init), boot it (QEMU, tiny ext4 root), print the boot report"
	@python3 qemu/boottest.py --demo

clean:
	rm -rf out target

# Boot the cached kernels under QEMU (TCG: x86_64 6.1 and 6.12, arm64 and
# riscv64 6.12 with the cross builds) and load real modules with
# out/earlymod, then with out/earlymod-tiny (the scenarios that need
# userspace decoders must fail naming module and decoder; lsmod and rmmod
# are skipped) (QEMU_LOADER=kmod|busybox to try other loaders,
# VM_ARGS=--bench for the vm-bench mode); then boot images made by
# earlymod-pack (packtest.py), earlymod as PID 1 (boottest.py, on arm64 and
# riscv64 archtest.py), our own test modules (modtest.py), syscalls per
# module vs kmod (syscalls.py); see qemu/README.md.
.PHONY: vmtest
vmtest: setup all examples cross
	python3 qemu/vmtest.py $(VM_ARGS)
	python3 qemu/vmtest.py --loader earlymod-tiny
	python3 qemu/packtest.py
	python3 qemu/boottest.py
	python3 qemu/boottest.py --earlymod out/earlymod-tiny
	python3 qemu/modtest.py
	python3 qemu/archtest.py
	$(MAKE) --no-print-directory syscalls

# Syscalls per loaded module in a QEMU guest (6.12), earlymod vs kmod 34
# and kmod 30, counted with strace: plain .ko, kernel-decompressed .ko.xz,
# userspace-decoded .ko.zst and .ko.gz, by insmod and modprobe
# (qemu/syscalls.py). Fails if earlymod makes more per module than kmod 34.
.PHONY: syscalls
syscalls: out/earlymod
	python3 qemu/syscalls.py --check --earlymod out/earlymod
