# earlymod entry points. `make` builds out/earlymod; `make test` installs
# what the tests need (scripts/setup.sh) and runs every test; `make demo` is
# the main job; `make bench` measures against kmod.
CARGO ?= cargo
CACHE ?= $(or $(EARLYMOD_CACHE),/var/cache/earlymod)
K612 = $(CACHE)/k612
export EARLYMOD_CACHE := $(CACHE)

.PHONY: all setup test unit difftest lint bench demo clean FORCE

all: out/earlymod

out/earlymod: FORCE
	$(CARGO) build --release --locked -p earlymod
	@mkdir -p out
	@cp target/release/earlymod out/earlymod
	@echo "out/earlymod: $$(stat -c %s out/earlymod) bytes"

setup:
	bash scripts/setup.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked --workspace --release

difftest: setup all
	$(CARGO) run --locked --release -q -p earlymod-tests --bin difftest -- --earlymod out/earlymod

test: setup lint unit difftest

bench: setup all
	$(CARGO) run --locked --release -q -p earlymod-tests --bin bench -- --earlymod out/earlymod

# The main job: resolve the default embedded module set on the real Debian
# 6.12 tree and print the load plan, exactly as kmod would.
demo: setup all
	@root=$(K612)/root; kver=$$(cat $(K612)/kver); \
	mods=$$(grep -v '^#' config/default-modules.conf | tr '\n' ' '); \
	echo "== earlymod modprobe -C config/modprobe.d -D -a <default set> on Linux $$kver"; \
	out/earlymod modprobe -d $$root -S $$kver -C config/modprobe.d -D -a $$mods

clean:
	rm -rf out target
