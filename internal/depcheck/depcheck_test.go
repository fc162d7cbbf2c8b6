// Package depcheck holds one test: the packages whose code is the product
// (the envelope format, the root key, the policy evaluator, SigV4
// verification) depend on the Go standard library and nothing else, as
// STYLE.md asks, so a reviewer can audit them without reading a dependency.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/cofferhq/coffer/"

func TestStandardLibraryOnly(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go") // go test puts its own GOROOT/bin first in PATH
	if err != nil {
		t.Fatalf("cannot check dependencies without the go command: %v", err)
	}
	for _, tc := range []struct {
		pkg string
		// tests: the package's tests count too; false for packages that
		// use a third-party client only as a test oracle.
		tests   bool
		allowed []string
	}{
		{pkg: "internal/crypto/envelope", tests: true},
		{pkg: "internal/crypto/rootkey", tests: true},
		{pkg: "internal/policy", tests: true},
		{pkg: "internal/auth/sigv4", allowed: []string{"internal/auth"}}, // aws-sdk-go-v2 is its test oracle
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			t.Parallel()
			args := []string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}
			if tc.tests {
				args = append(args, "-test")
			}
			out, err := exec.Command(goBin, append(args, module+tc.pkg)...).CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			allowed := map[string]bool{module + tc.pkg: true, module + tc.pkg + ".test": true}
			for _, a := range tc.allowed {
				allowed[module+a] = true
			}
			for _, p := range strings.Fields(string(out)) {
				// Test variants print as "pkg [pkg.test]".
				if p = strings.Trim(p, "[]"); !allowed[p] {
					t.Errorf("non-standard dependency: %s", p)
				}
			}
		})
	}
}
