# Every target bootstraps first, so each works on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV = eval "$$(scripts/bootstrap.sh --env)"

.PHONY: bootstrap build test check unit demo up bench clean

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

up: build
	@$(ENV); node scripts/up.mjs

demo: build
	@$(ENV); node scripts/demo.mjs

bench: build
	@$(ENV); node bench/timestamp.bench.mjs
	@$(ENV); node bench/tuf-metadata-size.mjs 10000
	@$(ENV); node bench/attestation.bench.mjs

clean:
	rm -rf dist .otter .otter-test
