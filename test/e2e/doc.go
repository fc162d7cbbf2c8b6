// Package e2e holds Coffer's end-to-end tests: each test builds nothing
// itself but starts the real coffer binary (built once by TestMain) on a
// free 127.0.0.1 port with its own data directory, and drives it with real
// clients: the docker engine, skopeo, and go-containerregistry.
//
// The tests are behind the build tag e2e, so `go test ./...` needs neither
// docker nor skopeo. Run them with
//
//	scripts/deps.sh                      # as root: docker.io, skopeo, crane
//	eval "$(scripts/dockerd.sh start)"   # a private dockerd, sets DOCKER_HOST
//	go test -tags e2e -count=1 ./test/e2e/...
//
// or simply `make e2e`. A missing tool is a test failure, never a skip.
//
// Set COFFER_BIN to test a prebuilt binary instead of building one.
package e2e
