package main

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is coffer's version, set at build time with
// -ldflags "-X main.version=v1.2.3".
var version = "dev"

func runVersion(e *env, fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "coffer version: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	info, _ := debug.ReadBuildInfo()
	fmt.Fprintln(e.stdout, versionLine(version, info, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH))
	return 0
}

// versionLine formats "coffer <version> (<revision>, <go version>,
// <os/arch>)". The revision comes from info's VCS stamp and is left out when
// unknown. When no version was set at link time, the module version from
// info (go install ...@v1.2.3, or a VCS-derived one) is used if known.
func versionLine(v string, info *debug.BuildInfo, goVersion, platform string) string {
	var details []string
	if info != nil {
		if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		var rev string
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			if modified {
				rev += "-dirty"
			}
			details = append(details, rev)
		}
	}
	details = append(details, goVersion, platform)
	return fmt.Sprintf("coffer %s (%s)", v, strings.Join(details, ", "))
}
