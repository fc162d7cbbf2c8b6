package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cofferhq/coffer/internal/config"
)

// env is what a subcommand may touch of the process: its output streams
// and environment. Tests pass their own.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// A command is one subcommand.
type command struct {
	name     string
	synopsis string // after "coffer <name>"
	summary  string // one line for the command list
	about    string // paragraph for the command's own help
	// config says the command reads the configuration, so it takes the
	// shared flags (--config, --data, ...).
	config bool
	// run executes the command. fs is its flag set, named and with
	// usage set; run adds its own flags and parses args (through
	// config.Load when config is set).
	run func(e *env, fs *flag.FlagSet, args []string) int
}

// commands lists the subcommands in help order. Admin commands (gc, audit,
// fsck, endpoints) go here, with config set so they share --config and
// --data with serve.
var commands = []command{
	{
		name:     "serve",
		synopsis: "[flags]",
		summary:  "run the registry",
		about: "Serve runs the registry until it receives SIGINT or SIGTERM, then shuts down\n" +
			"gracefully within --shutdown-timeout. Logs go to stderr.",
		config: true,
		run:    runServe,
	},
	{
		name:     "audit",
		synopsis: "verify|tail|public-key [flags]",
		summary:  "verify, follow or export the key of the audit trail",
		about:    auditAbout,
		config:   true,
		run:      runAudit,
	},
	{
		name:    "version",
		summary: "print the version",
		about:   "Version prints coffer's version, VCS revision, Go version and platform.",
		run:     runVersion,
	},
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// flagSet returns a flag set for c that reports problems and -h to w.
func (c command) flagSet(w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("coffer "+c.name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() { c.printUsage(w, fs) }
	return fs
}

// help prints the usage, or with a command name that command's usage.
func (e *env) help(args []string) int {
	switch len(args) {
	case 0:
		printUsage(e.stdout)
		return 0
	case 1:
		if c, ok := lookup(args[0]); ok {
			fs := c.flagSet(e.stdout)
			if c.config {
				config.RegisterFlags(fs)
			}
			c.printUsage(e.stdout, fs)
			return 0
		}
		fmt.Fprintf(e.stderr, "coffer help: unknown command %q\n\n", args[0])
	default:
		fmt.Fprintln(e.stderr, "coffer help: give at most one command")
	}
	printUsage(e.stderr)
	return 2
}

// printUsage prints the top-level usage.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `Coffer is a self-hosted container registry that speaks Amazon ECR's APIs.

Usage:
  coffer <command> [flags]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	fmt.Fprintf(tw, "  help\tprint this help, or a command's (coffer help serve)\n")
	tw.Flush()
	fmt.Fprintln(w)
	printSharedFlags(w)
}

// printUsage prints c's usage: its own flags, then the shared ones.
func (c command) printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage:\n  coffer %s %s\n\n%s\n", c.name, c.synopsis, c.about)
	shared := make(map[string]bool)
	for _, s := range config.Settings() {
		shared[s.Flag] = true
	}
	var own strings.Builder
	tw := tabwriter.NewWriter(&own, 0, 8, 3, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		if shared[f.Name] {
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + arg
		}
		fmt.Fprintf(tw, "  --%s%s\t%s\n", f.Name, arg, usage)
	})
	tw.Flush()
	if own.Len() > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s", own.String())
	}
	if c.config {
		fmt.Fprintln(w)
		printSharedFlags(w)
	}
}

// printSharedFlags prints the configuration settings every
// configuration-reading command shares, with their environment variables.
func printSharedFlags(w io.Writer) {
	fmt.Fprint(w, "Shared flags and their environment variables. A flag beats the environment,\n"+
		"which beats the config file, which beats the default:\n")
	settings := config.Settings()
	names := make([]string, len(settings))
	width := 0
	for i, s := range settings {
		names[i] = "(environment only)"
		if s.Flag != "" {
			names[i] = "--" + s.Flag
			if s.Arg != "" {
				names[i] += " " + s.Arg
			}
		}
		width = max(width, len(names[i]))
	}
	for i, s := range settings {
		usage := s.Usage
		if s.Default != "" {
			usage += " (default " + s.Default + ")"
		}
		// The usage goes on a line of its own, as in the flag package's
		// help, so the table fits 80 columns.
		fmt.Fprintf(w, "  %-*s   %s\n        %s\n", width, names[i], s.Env, usage)
	}
}

// configFailed reports an error from config.Load and returns the exit
// status.
func (e *env) configFailed(err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, config.ErrUsage):
		return 2 // the flag package has printed the problem and the usage
	}
	fmt.Fprintln(e.stderr, "coffer: invalid configuration:")
	for _, p := range problems(err) {
		fmt.Fprintf(e.stderr, "  %s\n", p)
	}
	return 2
}

// problems flattens errors.Join trees into one line per problem.
func problems(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	return strings.Split(err.Error(), "\n")
}
