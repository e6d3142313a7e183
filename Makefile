# The two commands (docs/interfaces.md §0):
#   make run   [DURATION=S]   the province in a box (see README)
#   make test                 install what is missing, build, run every test
# Others: make build, make fuzz [FUZZ_SECONDS=N], make powercut [POWERCUT_POINTS=N],
#         make soak [SOAK_MINUTES=N] [SOAK_HUBS=2], make bench, make cross, make clean,
#         make test-packages-chroot (the .debs installed, upgraded, purged in a chroot)
BUILD ?= build
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 300
POWERCUT_POINTS ?= 100000
SOAK_MINUTES ?= 60
DURATION ?=

.PHONY: all deps build test test-packages-chroot run fuzz powercut soak bench cross clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DAGRI_WERROR=$(if $(CI),ON,OFF) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

test:
	@scripts/test

test-packages-chroot: deps
	@scripts/test-packages-chroot

run: build
	@scripts/run $(if $(DURATION),--duration $(DURATION))

fuzz: deps
	@scripts/fuzz $(FUZZ_SECONDS)

powercut: deps
	@BUILD=$(BUILD) scripts/powercut $(POWERCUT_POINTS)

soak: build
	@BUILD=$(BUILD) scripts/soak --minutes $(SOAK_MINUTES) $(if $(SOAK_HUBS),--hubs $(SOAK_HUBS))

bench: build
	@for b in scripts/bench-*; do [ -x "$$b" ] && "$$b"; done

cross: deps
	@scripts/cross-build

clean:
	rm -rf $(BUILD) build-asan build-fuzz build-arm64 build-chroot
