//go:build tools

// Package conformance pins the OCI distribution-spec conformance suite.
// scripts/conformance.sh builds it from this module with
// `go test -c github.com/opencontainers/distribution-spec/conformance`;
// this file only keeps the requirement in go.mod.
//
// The checksum database has no entry for the pinned version, so go.sum
// carries its hashes (from /work/shared/ENVIRONMENT.md):
//
//	h1:jL+CgYEEZluGb08ZcLpEyhn389kNMlwrWOHaIqXazq0=
//
// To update: GONOSUMDB=github.com/opencontainers/distribution-spec/conformance
// go get -t github.com/opencontainers/distribution-spec/conformance@VERSION
package conformance

import _ "github.com/opencontainers/distribution-spec/conformance"
