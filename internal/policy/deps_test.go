package policy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly asserts that the package, its tests included,
// depends on nothing outside the Go standard library (STYLE: policy and
// crypto/envelope import only the standard library).
func TestStandardLibraryOnly(t *testing.T) {
	// go test puts its own GOROOT/bin first in PATH (Go 1.19+).
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("cannot check dependencies without the go command: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-test",
		"-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const self = "github.com/cofferhq/coffer/internal/policy"
	for _, p := range strings.Fields(strings.ReplaceAll(string(out), "\n", " ")) {
		// The package itself shows up as "self", "self [self.test]" and
		// "self.test"; the bracketed suffix is split off by Fields.
		p = strings.Trim(p, "[]")
		if p != self && p != self+".test" {
			t.Errorf("non-standard dependency: %s", p)
		}
	}
}
