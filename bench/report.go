package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// meta describes the run: when, where, what was compared and how.
type meta struct {
	Date     string `json:"date"`
	Mode     string `json:"mode"`
	Rounds   int    `json:"rounds"`
	Coffer   string `json:"coffer"`
	Peer     string `json:"peer"`
	PeerNote string `json:"peer_note,omitempty"`
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemGiB   int    `json:"mem_gib"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Client   string `json:"client"`
	Workload string `json:"workload"`

	// Unmeasured names the available variants that could not run here
	// (their backends could not be installed), each with why.
	Unmeasured []string `json:"unmeasured,omitempty"`
}

func newMeta(ctx context.Context, cfg config, root string, w *workload) meta {
	m := meta{
		Date:   time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		Mode:   "full",
		Rounds: cfg.runs,
		Cores:  runtime.NumCPU(),
		Go:     runtime.Version(),
		CPU:    procField("/proc/cpuinfo", "model name"),
		Kernel: strings.TrimSpace(readString("/proc/sys/kernel/osrelease")),
	}
	if cfg.smoke {
		m.Mode = "smoke"
	}
	if kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 10, 64); err == nil {
		m.MemGiB = int((kb + (1 << 19)) >> 20)
	}
	cmd := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		m.Coffer = strings.TrimSpace(string(out))
	} else {
		m.Coffer = "unknown (not a git checkout)"
	}
	if cfg.cofferBin != "" {
		m.Coffer = cfg.cofferBin
		if cfg.cofferVersion != "" {
			m.Coffer = cfg.cofferVersion + " (" + cfg.cofferBin + ")"
		}
	}
	ggcr := "go-containerregistry"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/google/go-containerregistry" {
				ggcr += " " + d.Version
			}
		}
	}
	m.Client = fmt.Sprintf("%s remote.Write / remote.Image, %d parallel blob transfers (ggcr's default) for push and pull, digests verified, no retries", ggcr, cfg.jobs)
	m.Workload = fmt.Sprintf("big image %d × %s random layers; small image %d × %s; %d manifest HEADs and %d GETs at concurrency %d after %d warm-up requests",
		len(w.big.layers), size(w.big.layers[0].size), len(w.small.layers), size(w.small.layers[0].size),
		w.requests, w.requests, w.concurrency, 4*w.concurrency)
	return m
}

func procField(path, key string) string {
	for line := range strings.Lines(readString(path)) {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// size prints a power-of-two size: 128 MiB, 64 KiB.
func size(n int64) string {
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%d GiB", n/gib)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// num prints a figure with as many digits as it deserves.
func num(v float64) string {
	switch {
	case v >= 1000:
		s := strconv.FormatFloat(v, 'f', 0, 64)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		return s
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func cell(st stat, suffix string) string {
	s := num(st.Median) + suffix
	if len(st.Values) > 1 {
		s += fmt.Sprintf(" (%s–%s)", num(st.Min), num(st.Max))
	}
	return s
}

// report is everything the run produced, written as markdown and JSON.
type report struct {
	Meta     meta            `json:"meta"`
	Targets  []string        `json:"targets"`
	Missing  []string        `json:"not_available,omitempty"`
	Results  results         `json:"results"`
	Goals    []goalVerdict   `json:"goals"`
	Ceilings []ceilingStat   `json:"ceilings"`
	Samples  []sample        `json:"samples"`
	Ceil     []ceilingSample `json:"ceiling_samples"`
	Profiles []string        `json:"profiles,omitempty"`
	Clean    map[string]int  `json:"clean_rounds"` // per phase
	Errors   []string        `json:"errors,omitempty"`

	targets []*target
	peer    *target
	quiet   float64
	w       *workload
}

type goalVerdict struct {
	goal
	Target string  `json:"target"`
	Median float64 `json:"median"`
	Met    bool    `json:"met"`
}

type ceilingStat struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	MBps  stat   `json:"mb_per_s"`
}

func (rep *report) markdown(out io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(out, format, args...) }
	m := rep.Meta
	p("Run %s, %s mode, %d round(s); each figure is the median over the rounds its phase ran clean (see Noise), with the (min–max).\n\n", m.Date, m.Mode, m.Rounds)
	p("- Machine: %s, %d cores, %d GiB RAM, Linux %s, %s\n", m.CPU, m.Cores, m.MemGiB, m.Kernel, m.Go)
	p("- Coffer: %s; peer: %s\n", m.Coffer, m.Peer)
	if m.PeerNote != "" {
		p("- **%s**\n", m.PeerNote)
	}
	for _, n := range m.Unmeasured {
		p("- **%s**\n", n)
	}
	p("- Client: %s\n", m.Client)
	p("- Workload: %s\n\n", m.Workload)

	for _, tbl := range []struct{ id, title string }{
		{tableBlobs, "Blob throughput"},
		{tableManifests, "Manifest requests"},
		{tableResources, "Server resources"},
	} {
		var figs []figureResult
		for _, f := range figures(rep.w) {
			if f.Table == tbl.id {
				figs = append(figs, rep.Results.get(f.ID))
			}
		}
		p("%s\n\n| registry |", tbl.title)
		for _, f := range figs {
			p(" %s |", f.Title)
		}
		p("\n|---|%s\n", strings.Repeat("---:|", len(figs)))
		for _, t := range rep.targets {
			p("| %s |", t.Name)
			for _, f := range figs {
				if st, ok := f.Values[t.Name]; ok {
					p(" %s |", cell(st, ""))
				} else {
					p(" failed |")
				}
			}
			p("\n")
			if t.Coffer && rep.peer != nil {
				p("| %s ÷ %s |", t.Name, rep.peer.Name)
				for _, f := range figs {
					if st, ok := f.Ratios[t.Name]; ok {
						p(" %s |", cell(st, "×"))
					} else {
						p(" — |")
					}
				}
				p("\n")
			}
		}
		for _, v := range variants {
			if !v.Available {
				p("| coffer %s | not available yet (issue #%d) |%s\n", v.Name, v.Issue, strings.Repeat(" — |", len(figs)-1))
			}
		}
		p("\n")
	}

	p("Targets (judged on the median of a full run on the reference 2-core machine)\n\n| figure | target | issue |")
	var coffers []*target
	for _, t := range rep.targets {
		if t.Coffer {
			coffers = append(coffers, t)
			p(" %s |", t.Name)
		}
	}
	p("\n|---|---|---|%s\n", strings.Repeat("---|", len(coffers)))
	for _, g := range goals {
		p("| %s | %s | #%d |", rep.Results.get(g.Figure).Title, g.Text, g.Issue)
		for _, t := range coffers {
			v, met, ok := g.verdict(rep.Results, t.Name)
			suffix := ""
			if g.Ratio {
				suffix = "×"
			}
			switch {
			case !ok:
				p(" no data |")
			case m.Mode != "full":
				p(" %s%s (smoke: not judged) |", num(v), suffix)
			case met:
				p(" %s%s meets |", num(v), suffix)
			default:
				p(" %s%s **MISSES** |", num(v), suffix)
			}
		}
		p("\n")
	}

	p("\nNoise: other processes' CPU plus hypervisor steal during each phase, in cores, median (max) over the rounds counted; /proc/stat counts 10 ms ticks, so a phase under 0.5 s reads ±0.1 core or worse. A phase is *busy* when the wait for others to go under %.2f cores timed out or they took over %.2f cores during it; busy rounds count only for a phase that never ran clean.\n\n| phase | rounds counted |", rep.quiet, max(2*rep.quiet, 0.5))
	for _, t := range rep.targets {
		p(" %s |", t.Name)
	}
	p("\n|---|---|%s\n", strings.Repeat("---:|", len(rep.targets)))
	for _, ph := range phases {
		rounds, busy := map[int]bool{}, map[int]bool{}
		for _, s := range rep.Samples {
			if s.Phase == ph.ID {
				rounds[s.Round] = true
				busy[s.Round] = busy[s.Round] || s.Busy
			}
		}
		nbusy := 0
		for _, b := range busy {
			if b {
				nbusy++
			}
		}
		counted := fmt.Sprintf("%d clean", rep.Clean[ph.ID])
		switch {
		case rep.Clean[ph.ID] == 0 && nbusy > 0:
			counted = fmt.Sprintf("**%d busy** (never clean)", nbusy)
		case nbusy > 0:
			counted += fmt.Sprintf(" (%d busy left out)", nbusy)
		}
		p("| %s | %s |", ph.Title, counted)
		for _, t := range rep.targets {
			var v []float64
			for _, s := range rep.Samples {
				if s.Target == t.Name && s.Phase == ph.ID && s.Err == "" && (!s.Busy || rep.Clean[ph.ID] == 0) {
					v = append(v, s.Noise)
				}
			}
			if st, ok := newStat(v); ok {
				p(" %.2f (%.2f) |", st.Median, st.Max)
			} else {
				p(" — |")
			}
		}
		p("\n")
	}

	p("\nHardware ceilings, measured in each round\n\n| ceiling | MB/s | how |\n|---|---:|---|\n")
	for i, c := range rep.Ceilings {
		p("| %s | %s | %s |\n", c.Title, cell(c.MBps, ""), ceilings[i].Note)
	}
	if len(rep.Profiles) > 0 {
		p("\nProfiles (from an extra, unmeasured round): %s\n", strings.Join(rep.Profiles, ", "))
	}
	if len(rep.Errors) > 0 {
		p("\n**%d failure(s):**\n\n", len(rep.Errors))
		for _, e := range rep.Errors {
			p("- %s\n", firstLine(e))
		}
	}
}

// writeJSON writes v, indented, to path, creating its directory.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
