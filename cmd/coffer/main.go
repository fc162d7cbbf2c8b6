// Command coffer runs the Coffer container registry and its admin tools.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// run is the whole command line: it dispatches args (without the program
// name) to a subcommand and returns the exit status: 0 on success, 1 when
// the work failed, 2 for a bad command line or configuration.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return e.help(args)
	}
	cmd, ok := lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "coffer: unknown command %q\n\n", name)
		printUsage(stderr)
		return 2
	}
	return cmd.run(e, cmd.flagSet(stderr), args)
}
