# Coffer's build and test entry points. `make test` is what CI runs
# (.ci/run); the other targets run one part of it. Helper scripts live in
# scripts/, tools they fetch in .tools/ (never in go.mod).

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 10s

.PHONY: build test unit race lint fuzz conformance e2e bench bench-smoke vuln deps clean help

## build: bin/coffer, with the version from git describe (or VERSION=...)
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/coffer ./cmd/coffer

## test: every test (deps, gofmt, vet, race, e2e, conformance, fuzz smoke)
test:
	scripts/test.sh

## unit: go test ./...
unit:
	$(GO) test ./...

## race: go test -race ./...
race:
	$(GO) test -race ./...

## lint: gofmt -l must be empty, go vet, staticcheck
lint:
	scripts/lint.sh

## fuzz: each Fuzz target for FUZZTIME (default 10s)
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

## conformance: OCI distribution-spec conformance suite against a fresh coffer
conformance:
	scripts/conformance.sh

## e2e: end-to-end tests with docker, skopeo and go-containerregistry
e2e:
	scripts/e2e.sh

## bench: the full benchmark against CNCF distribution v3 and against this source with the audit trail compiled out, then listing at 1,000,000 tags, then one replica against two (docs/benchmarks.md; by hand, minutes)
bench:
	go run ./bench -audit-off
	go run ./bench -listing
	go run ./bench -replicas

## bench-smoke: the benchmark harness on small data, one round (CI runs it)
bench-smoke:
	go run ./bench -smoke
	go run ./bench -listing -smoke
	go run ./bench -replicas -smoke

## vuln: govulncheck (needs the Go vulnerability database to be reachable)
vuln:
	scripts/vuln.sh

## deps: install what the tests need (apt packages need root)
deps:
	scripts/deps.sh

## clean: remove build output and test reports (keeps .tools)
clean:
	rm -rf bin test-reports

## help: this list
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)
