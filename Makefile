# cellgate — the two commands that matter: `make dev` and `make test` (see README.md).
SHELL := /bin/bash
GO ?= go
TEMPORAL_CLI_VERSION := v1.5.1
# The linter make test runs after go vet (its checks: staticcheck.conf).
STATICCHECK_VERSION := v0.8.2
# go test's per-package timeout: bcrypt at cost 12 under the race detector is slow.
TEST_TIMEOUT ?= 30m
# How long CI fuzzes the tunnel's packet parser beyond its committed seed corpus: a count of
# runs (about 20 s here), not a duration, since a -fuzztime duration can end in a spurious
# "context deadline exceeded" failure (a race in Go's fuzz coordinator, golang/go#75804,
# fixed only in Go 1.27).
FUZZ_TIME ?= 300000x
# The same for the parsers of what customers and operators send (proxy requests, hosts):
# about 10 s each here.
PARSER_FUZZ_TIME ?= 100000x

# The demo fleet `make dev` runs (simulated devices, one flapping, and a webhook receiver);
# DEMO=0: none.
DEMO ?= 3

.PHONY: dev test build deps vet bench web web-test

# The whole system on this machine: Postgres in .data/, Temporal dev server, api + worker, the
# dashboard at the API's address, and the demo fleet.
dev: deps bin/temporal build
	bin/cellgate dev $(if $(DEMO),--demo $(DEMO))

# Everything CI runs: install what is missing, vet and staticcheck, and every test with the race detector (and
# the 1,000-row password migration on the dev server and the relay's handshake flood, which are
# too slow under it); the
# dashboard's browser tests (Playwright in Debian's chromium against a stack they start); then
# the network-namespace end-to-end tests (e2e/, build tag e2e), which need root.
test: deps bin/temporal bin/staticcheck build
	$(GO) vet ./...
	bin/staticcheck ./...
	bin/staticcheck -tags e2e ./e2e/...
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -count=1 -timeout 30m -run '^TestPasswordMigrationDevServer$$' ./workflows
	$(GO) test -count=1 -run '^TestRelayHandshakeFlood$$' ./tunnel/relay
	$(GO) test -run '^$$' -fuzz '^FuzzParsePacket$$' -fuzztime $(FUZZ_TIME) ./tunnel/wire
	$(GO) test -run '^$$' -fuzz '^FuzzParseHost$$' -fuzztime $(PARSER_FUZZ_TIME) ./netguard
	$(GO) test -run '^$$' -fuzz '^FuzzReadRequest$$' -fuzztime $(PARSER_FUZZ_TIME) ./gateway/httpproxy
	$(GO) test -run '^$$' -fuzz '^FuzzReadRequest$$' -fuzztime $(PARSER_FUZZ_TIME) ./gateway/socks5
	$(GO) test -run '^$$' -fuzz '^FuzzParseDatagram$$' -fuzztime $(PARSER_FUZZ_TIME) ./gateway/socks5
	scripts/web-test.sh
	$(GO) vet -tags e2e ./e2e/...
	@if [[ $$(id -u) -eq 0 ]]; then \
		echo "$(GO) test -tags e2e -count=1 -timeout 20m ./e2e/..."; \
		$(GO) test -tags e2e -count=1 -timeout 20m ./e2e/...; \
	else \
		echo "e2e: skipped (needs root)"; \
	fi

build: web
	$(GO) build -o bin/cellgate ./cmd/cellgate

# The dashboard: npm ci (when package-lock.json changed), next build (a static export in
# web/out), copied into dashboard/dist, which the cellgate binary embeds. Rebuilt only when a
# file of web/ changed.
WEB_SRC := $(shell find web/src web/public -type f 2>/dev/null) web/scripts/api-schema.ts \
	web/package.json web/package-lock.json web/next.config.ts web/tsconfig.json web/postcss.config.mjs
web: dashboard/dist/index.html

web/node_modules/.package-lock.json: web/package-lock.json web/package.json
	cd web && npm ci --no-audit --no-fund

dashboard/dist/index.html: web/node_modules/.package-lock.json $(WEB_SRC)
	cd web && NEXT_TELEMETRY_DISABLED=1 npm run build
	find dashboard/dist -mindepth 1 ! -name .gitkeep -delete
	cp -R web/out/. dashboard/dist/

# The dashboard's browser tests alone (make test runs them too).
web-test: bin/temporal build
	scripts/web-test.sh

deps:
	scripts/install-deps.sh

# The Temporal CLI (dev server + Web UI). Later CLI versions cannot be `go install`ed.
bin/temporal:
	GOBIN=$(CURDIR)/bin $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

bin/staticcheck:
	GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

vet: bin/staticcheck
	$(GO) vet ./...
	bin/staticcheck ./...
