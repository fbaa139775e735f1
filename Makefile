# Every target bootstraps first, so each works on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV = eval "$$(scripts/bootstrap.sh --env)"

.PHONY: bootstrap build test check unit api-client demo up bench bench-delta bench-delta-large bench-delta-tools clean

bootstrap:
	@scripts/bootstrap.sh

build: bootstrap
	@$(ENV); rm -rf dist; npx tsc -p tsconfig.build.json

check: bootstrap
	@$(ENV); npx tsc -p tsconfig.json --noEmit
	@$(ENV); npx eslint --max-warnings=0 .
	@$(ENV); npx prettier --check --log-level=warn .

test: check build
	@$(ENV); eval "$$(scripts/test-services.sh)"; npx vitest run

unit: bootstrap
	@$(ENV); eval "$$(scripts/test-services.sh)"; npx vitest run $(ARGS)

# The typed client in libs/api-client/src/generated, from GET /api/openapi.json (docs/api.md).
api-client: bootstrap
	@$(ENV); eval "$$(scripts/test-services.sh)"; OTTER_WRITE_API_CLIENT=1 npx vitest run apps/api/src/api-contract/api-client-drift.e2e.spec.ts

up: build
	@$(ENV); node scripts/up.mjs

demo: build
	@$(ENV); node scripts/demo.mjs

# The attestation and director-poll runs compare against this commit's build (made once into .otter-bench/):
# the parent of the token-binding merge, main with every other issue-9 change, so the comparison shows the
# binding of device tokens to the TPM key (issue 9, item 2) alone. Empty: no comparison.
BENCH_BEFORE_REF ?= 4e36d31

bench: build
	@$(ENV); node bench/timestamp.bench.mjs
	@$(ENV); node bench/tuf-metadata-size.mjs 10000
	@$(ENV); BENCH_BEFORE_REF=$(BENCH_BEFORE_REF) node bench/attestation.bench.mjs
	@$(ENV); eval "$$(scripts/test-services.sh)"; node bench/rollout-tick.bench.mjs
	@$(ENV); eval "$$(scripts/test-services.sh)"; node bench/metrics.bench.mjs
	@$(ENV); eval "$$(scripts/test-services.sh)"; BENCH_BEFORE_REF=$(BENCH_BEFORE_REF) node bench/director-poll.bench.mjs
	@$(ENV); eval "$$(scripts/test-services.sh)"; node bench/events.bench.mjs
	@$(ENV); eval "$$(scripts/test-services.sh)"; node bench/node-list.bench.mjs

# Otter's delta builder next to Debian's bsdiff, xdelta3 and zstd on a corpus built from the npm registry
# (cached in .otter-bench/). About 10 minutes on 2 cores; BENCH_DELTA_QUICK=1 for a smoke run.
bench-delta: build bench-delta-tools
	@$(ENV); node bench/delta.bench.mjs

# A generated 4 GiB filesystem-like pair built within the worker's default 1024 MiB budget, then applied and
# checked (BENCH_DELTA_LARGE_GIB, BENCH_DELTA_LARGE_BUDGET_MB). Needs ~17 GiB of disk in .otter-bench/.
bench-delta-large: build bench-delta-tools
	@$(ENV); node bench/delta-large.bench.mjs

# The Debian tools bench-delta compares against (and e2fsprogs for its ext4 images), as bootstrap installs.
bench-delta-tools:
	@missing=(); \
	for t in bsdiff:bsdiff xdelta3:xdelta3 zstd:zstd mke2fs:e2fsprogs /usr/bin/time:time; do \
	  command -v "$${t%%:*}" >/dev/null || missing+=("$${t##*:}"); \
	done; \
	if [ $${#missing[@]} -gt 0 ]; then \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	    echo "[bench-delta] missing Debian packages (needs root and apt-get): $${missing[*]}" >&2; exit 1; \
	  fi; \
	  echo "[bench-delta] installing Debian packages: $${missing[*]}" >&2; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq >/dev/null; \
	  apt-get install -y -qq --no-install-recommends "$${missing[@]}" >/dev/null; \
	fi

clean:
	rm -rf dist .otter .otter-test
