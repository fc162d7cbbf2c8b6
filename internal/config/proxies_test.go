package config

import (
	"slices"
	"strings"
	"testing"
)

// trusted_proxies comes from the file, the environment or a flag, as
// comma-separated CIDRs or addresses; an endpoint's own list is separate.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		args    []string
		want    []string
		problem string
	}{
		{name: "default: none", want: nil},
		{name: "file", file: "version: 1\ntrusted_proxies: \"10.0.0.0/8, 192.168.1.10\"\n", args: []string{"--config", "$FILE"},
			want: []string{"10.0.0.0/8", "192.168.1.10/32"}},
		{name: "env, unmasked and IPv6", env: map[string]string{"COFFER_TRUSTED_PROXIES": "10.1.2.3/16,fd00::/8"},
			want: []string{"10.1.0.0/16", "fd00::/8"}},
		{name: "flag", args: []string{"--trusted-proxies", "127.0.0.2"}, want: []string{"127.0.0.2/32"}},
		{name: "endpoint list in the file", file: "version: 1\nendpoints:\n  - listen: [\"127.0.0.2:0\"]\n    services: [ecr.dkr]\n    insecure: true\n    trusted_proxies: [127.0.0.9]\n",
			args: []string{"--config", "$FILE"}, want: nil},
		{name: "bad entry", env: map[string]string{"COFFER_TRUSTED_PROXIES": "10.0.0.0/8,10.0.0.0/33,proxy.internal"},
			problem: `trusted_proxies (env COFFER_TRUSTED_PROXIES): "10.0.0.0/33" is not a CIDR such as 10.0.0.0/16` + "\n" + `"proxy.internal" is not a CIDR`},
		{name: "bad endpoint entry", file: "version: 1\nendpoints:\n  - listen: [\"127.0.0.2:0\"]\n    services: [ecr.dkr]\n    insecure: true\n    trusted_proxies: [nope]\n",
			args: []string{"--config", "$FILE"}, problem: `endpoints[0]: trusted_proxies: "nope" is not a CIDR`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(t, tc.file, tc.env, tc.args...)
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("Load error = %v; want %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ps, err := cfg.TrustedProxyPrefixes()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("TrustedProxyPrefixes = %v, want %v", got, tc.want)
			}
			if tc.name == "endpoint list in the file" && !slices.Equal(cfg.Endpoints[0].TrustedProxies, []string{"127.0.0.9"}) {
				t.Fatalf("endpoint trusted_proxies = %v", cfg.Endpoints[0].TrustedProxies)
			}
		})
	}
}
