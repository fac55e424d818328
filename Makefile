# cellgate — the two commands that matter: `make dev` and `make test` (see README.md).
SHELL := /bin/bash
GO ?= go
TEMPORAL_CLI_VERSION := v1.5.1
# go test's per-package timeout: bcrypt at cost 12 under the race detector is slow.
TEST_TIMEOUT ?= 30m

.PHONY: dev test build deps vet bench

# The whole system on this machine: Postgres in .data/, Temporal dev server, api + worker.
dev: deps bin/temporal build
	bin/cellgate dev $(if $(DEMO),--demo $(DEMO))

# Everything CI runs: install what is missing, vet, and every test with the race detector.
test: deps bin/temporal
	$(GO) vet ./...
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

build:
	$(GO) build -o bin/cellgate ./cmd/cellgate

deps:
	scripts/install-deps.sh

# The Temporal CLI (dev server + Web UI). Later CLI versions cannot be `go install`ed.
bin/temporal:
	GOBIN=$(CURDIR)/bin $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

vet:
	$(GO) vet ./...
