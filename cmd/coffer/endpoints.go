package main

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/server"
)

func init() {
	commands = append(commands, command{
		name:     "endpoints",
		synopsis: "[flags]",
		summary:  "list the network endpoints",
		about: "Endpoints lists the listeners the configuration defines: the public listener and\n" +
			"each VPC-style endpoint with its ID (generated once and kept in the data\n" +
			"directory), VPC, addresses, services, DNS names, allowed sources and TLS.",
		config: true,
		run:    runEndpoints,
	})
}

func runEndpoints(e *env, fs *flag.FlagSet, args []string) int {
	cfg, err := config.Load(fs, args, e.getenv)
	if err != nil {
		return e.configFailed(err)
	}
	eps, err := server.Endpoints(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "coffer endpoints: %v\n", err)
		return 1
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVPC\tLISTEN\tSERVICES\tDNS NAMES\tALLOWED SOURCES\tTLS\tPOLICY")
	if cfg.PublicEndpoint {
		fmt.Fprintf(tw, "public\t-\t%s\tall\t-\tany\tno\t-\n", cfg.Listen)
	}
	for _, ep := range eps {
		tls := "generated (" + cfg.DataDir + "/tls/ca.crt)"
		switch {
		case ep.Insecure:
			tls = "no"
		case ep.CertFile != "":
			tls = ep.CertFile
		}
		sources := "any"
		if len(ep.Allowed) > 0 {
			var s []string
			for _, p := range ep.Allowed {
				s = append(s, p.String())
			}
			sources = strings.Join(s, ",")
		}
		pol := "default (full access)"
		if len(ep.Policy) > 0 {
			pol = "custom"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ep.ID, orDash(ep.VPCID), strings.Join(ep.Listen, ","),
			strings.Join(ep.Services, ","), orDash(strings.Join(ep.DNSNames, ",")), sources, tls, pol)
	}
	tw.Flush()
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
