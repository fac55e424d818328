# cellgate — the two commands that matter: `make dev` and `make test` (see README.md).
SHELL := /bin/bash
GO ?= go
TEMPORAL_CLI_VERSION := v1.5.1
# go test's per-package timeout: bcrypt at cost 12 under the race detector is slow.
TEST_TIMEOUT ?= 30m
# How long CI fuzzes the tunnel's packet parser beyond its committed seed corpus.
FUZZ_TIME ?= 20s

.PHONY: dev test build deps vet bench

# The whole system on this machine: Postgres in .data/, Temporal dev server, api + worker.
dev: deps bin/temporal build
	bin/cellgate dev $(if $(DEMO),--demo $(DEMO))

# Everything CI runs: install what is missing, vet, and every test with the race detector.
# Then the network-namespace end-to-end tests (e2e/, build tag e2e), which need root.
test: deps bin/temporal
	$(GO) vet ./...
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -run '^$$' -fuzz '^FuzzParsePacket$$' -fuzztime $(FUZZ_TIME) ./tunnel
	$(GO) vet -tags e2e ./e2e/...
	@if [[ $$(id -u) -eq 0 ]]; then \
		echo "$(GO) test -tags e2e -count=1 -timeout 20m ./e2e/..."; \
		$(GO) test -tags e2e -count=1 -timeout 20m ./e2e/...; \
	else \
		echo "e2e: skipped (needs root)"; \
	fi

build:
	$(GO) build -o bin/cellgate ./cmd/cellgate

deps:
	scripts/install-deps.sh

# The Temporal CLI (dev server + Web UI). Later CLI versions cannot be `go install`ed.
bin/temporal:
	GOBIN=$(CURDIR)/bin $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

vet:
	$(GO) vet ./...
