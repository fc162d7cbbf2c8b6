// Command bench measures Coffer side by side with CNCF distribution v3 on
// the same machine, in the same run, with the same client
// (go-containerregistry), and prints a markdown table: per registry and as
// Coffer/peer ratios, push and pull throughput of a big image and of many
// small layers, manifest HEAD and GET requests/s with p50/p99, peak server
// RSS and server CPU per GiB, with the machine's hardware ceilings and the
// noise of other processes measured alongside. docs/benchmarks.md explains
// the method and keeps the latest table and the targets.
//
//	go run ./bench                 full run: 3 clean rounds (needs distribution v3; installs it)
//	go run ./bench -smoke          seconds, small data, 1 round (CI)
//	go run ./bench -profile DIR    also capture Coffer's CPU and heap profiles and traces
//	go run ./bench -baseline BIN   also measure another Coffer build side by side
//	go run ./bench -listing        ListImages / DescribeImages pages at 1,000,000 tags, SQLite and PostgreSQL (listing.go)
//	go run ./bench -listing -smoke the same at 10,000 tags (CI)
//	go run ./bench -replicas       16 clients' push and pull through one replica and two, on PostgreSQL + S3 (replicas.go)
//
// Exit status: 0 when every push, pull and request succeeded with the right
// digests; 1 on any failure (or, for a full run, without distribution);
// 2 on bad flags. A missed performance target is reported, not an error.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// config is the harness's flags.
type config struct {
	smoke           bool
	runs            int
	jsonPath        string
	profileDir      string
	profileSeconds  int
	cofferBin       string
	cofferVersion   string
	registryBin     string
	baselineBin     string
	baselineVersion string
	auditOff        bool
	peer            bool
	installTimeout  time.Duration
	requests        int
	concurrency     int
	jobs            int
	keep            bool
	clientProfile   string
	quiet           float64
	prewarm         bool
	retries         int
	quietWait       time.Duration

	bigLayers, smallLayers int
	bigLayer, smallLayer   int64
	ceilingBytes           int64
	only                   string // -variants

	listing      bool // -listing: the listing benchmark instead (listing.go)
	listingTags  int
	listingPages int
	listingOnly  string // -listing-stores

	replicas bool // -replicas: the replicas benchmark instead (replicas.go)
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// wants reports whether -variants selects v (all when it is empty).
func (c config) wants(v variant) bool {
	if c.only == "" {
		return true
	}
	for _, n := range strings.Split(c.only, ",") {
		if strings.TrimSpace(n) == v.Name {
			return true
		}
	}
	return false
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.BoolVar(&c.smoke, "smoke", false, "seconds-long run with small data (16 MiB image in 4 layers, 20 small layers, 500 requests, 1 round); runs Coffer alone if distribution cannot be installed")
	fs.IntVar(&c.runs, "runs", 0, "clean rounds wanted per phase; each figure is the median over them (default 3, or 1 with -smoke)")
	fs.StringVar(&c.jsonPath, "json", "", "also write everything measured, per round, as JSON to `FILE`")
	fs.StringVar(&c.profileDir, "profile", "", "capture Coffer's CPU profile of every phase and a heap profile after the big push into `DIR`, in an extra unmeasured round")
	fs.IntVar(&c.profileSeconds, "profile-seconds", 0, "length of each CPU profile (default: 1.2 × the phase's median duration + 1 s)")
	fs.StringVar(&c.cofferBin, "coffer", "", "Coffer binary to measure (default: build ./cmd/coffer)")
	fs.StringVar(&c.cofferVersion, "coffer-version", "", "what the -coffer binary was built from, for the report (e.g. a commit)")
	fs.StringVar(&c.baselineBin, "baseline", "", "also measure this other Coffer `binary` (first variant's settings), e.g. the previous commit's build")
	fs.StringVar(&c.baselineVersion, "baseline-version", "", "what the -baseline binary was built from, for the report")
	fs.BoolVar(&c.auditOff, "audit-off", false, "as -baseline, measure this source built with the audit trail compiled out (-tags coffer_bench_noaudit): what the trail costs (issue #8)")
	fs.StringVar(&c.registryBin, "registry", "", "distribution v3 registry binary (default: .tools/bin/registry, installed with go install if missing)")
	fs.BoolVar(&c.peer, "peer", true, "compare with distribution v3 (-peer=false: Coffer alone, no ratios)")
	fs.DurationVar(&c.installTimeout, "install-timeout", 0, "how long installing distribution may take (default 10m, or 3m with -smoke)")
	fs.IntVar(&c.requests, "requests", 0, "manifest HEADs and GETs per round (default 10000, or 500 with -smoke)")
	fs.IntVar(&c.concurrency, "concurrency", 16, "parallel manifest requests")
	fs.IntVar(&c.jobs, "jobs", 4, "parallel blob transfers in push and pull (4 is go-containerregistry's default)")
	fs.Float64Var(&c.quiet, "quiet", 0.3, "before each phase, wait until other processes use less than this many cores (0: do not wait)")
	fs.DurationVar(&c.quietWait, "quiet-wait", -1, "give up waiting for a quiet machine after this long and mark the phase busy (default 5m, or 0 with -smoke)")
	fs.IntVar(&c.retries, "retries", -1, "extra rounds allowed so that every phase gets -runs clean (not busy) rounds (default 3, or 0 with -smoke)")
	fs.BoolVar(&c.prewarm, "prewarm", true, "before each big push, write and delete a scratch file 1.25× its size so that every registry writes into host-backed memory (see prewarm in procstat.go)")
	fs.StringVar(&c.clientProfile, "client-cpuprofile", "", "write the harness's own CPU profile over the measured rounds to `FILE` (is the client the bottleneck?)")
	fs.BoolVar(&c.keep, "keep", false, "keep the servers' data directories and logs")
	fs.BoolVar(&c.listing, "listing", false, "run the listing benchmark instead (issue #9): ListImages and DescribeImages pages of one repository of -listing-tags tags, on SQLite and PostgreSQL, through the ECR API")
	fs.IntVar(&c.listingTags, "listing-tags", 0, "tags in the -listing repository (default 1000000, or 10000 with -smoke)")
	fs.IntVar(&c.listingPages, "listing-pages", 0, "pages timed per -listing series and round (default 500, or 40 with -smoke)")
	fs.BoolVar(&c.replicas, "replicas", false, "run the replicas benchmark instead (issue #9): 16 clients push and pull through one replica and through two on one PostgreSQL and one bucket; -runs rounds")
	fs.StringVar(&c.listingOnly, "listing-stores", "", "-listing on these stores only, comma-separated: SQLite, PostgreSQL (default both)")
	fs.StringVar(&c.only, "variants", "", "measure only these Coffer variants, comma-separated names as in the table without \"coffer \" (e.g. \"AES256,AES256 + auth\"); default all")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	def := func(p *int, full, smoke int) {
		if *p == 0 {
			*p = full
			if c.smoke {
				*p = smoke
			}
		}
	}
	def(&c.runs, 3, 1)
	def(&c.requests, 10000, 500)
	def(&c.listingTags, 1_000_000, 10_000)
	def(&c.listingPages, 500, 40)
	if c.installTimeout == 0 {
		c.installTimeout = 10 * time.Minute
		if c.smoke {
			c.installTimeout = 3 * time.Minute
		}
	}
	if c.retries < 0 {
		c.retries = 3
		if c.smoke {
			c.retries = 0
		}
	}
	if c.quietWait < 0 {
		c.quietWait = 5 * time.Minute
		if c.smoke {
			c.quietWait = 0
		}
	}
	c.bigLayers, c.bigLayer = 8, 128<<20
	c.smallLayers, c.smallLayer = 200, 64<<10
	c.ceilingBytes = 512 << 20
	if c.smoke {
		c.bigLayers, c.bigLayer = 4, 4<<20
		c.smallLayers = 20
		c.ceilingBytes = 32 << 20
	}
	var errs []error
	if c.only != "" {
		known := map[string]bool{}
		for _, v := range variants {
			known[v.Name] = true
		}
		for _, n := range strings.Split(c.only, ",") {
			if n = strings.TrimSpace(n); !known[n] {
				errs = append(errs, fmt.Errorf("-variants: no variant %q", n))
			}
		}
	}
	if c.runs < 1 {
		errs = append(errs, errors.New("-runs must be at least 1"))
	}
	if c.listingTags < 2 || c.listingPages < 1 {
		errs = append(errs, errors.New("-listing-tags must be at least 2 and -listing-pages at least 1"))
	}
	if c.auditOff && c.baselineBin != "" {
		errs = append(errs, errors.New("-audit-off and -baseline both name the baseline: give one"))
	}
	if c.requests < 1 || c.concurrency < 1 || c.jobs < 1 {
		errs = append(errs, errors.New("-requests, -concurrency and -jobs must be at least 1"))
	}
	if c.profileSeconds < 0 {
		errs = append(errs, errors.New("-profile-seconds must not be negative"))
	}
	return c, errors.Join(errs...)
}

func run(args []string) int {
	cfg, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	if _, err := readSysCPU(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: needs Linux /proc: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := repoRoot(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	work, err := os.MkdirTemp("", "coffer-bench-bin-*")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(work)

	// Binaries first, then test data, all before any timing.
	cofferBin := cfg.cofferBin
	if cofferBin == "" {
		logf("building ./cmd/coffer")
		if cofferBin, err = buildCoffer(ctx, root, work); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
	}
	if cfg.auditOff {
		logf("building ./cmd/coffer with the audit trail compiled out")
		if cfg.baselineBin, err = buildCoffer(ctx, root, work, "coffer_bench_noaudit"); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
		cfg.baselineVersion = "audit compiled out"
	}
	if cfg.listing {
		return runListing(ctx, cfg, cofferBin)
	}
	if cfg.replicas {
		return runReplicas(ctx, cfg, cofferBin)
	}
	var targets []*target
	var peer *target
	peerName, peerNote := "none", ""
	if cfg.peer {
		bin, err := peerBinary(ctx, cfg, root)
		switch {
		case err == nil:
			peer = &target{Name: "distribution " + distributionVersion, spec: distributionSpec(bin)}
			targets = append(targets, peer)
			peerName = fmt.Sprintf("CNCF distribution %s (%s)", distributionVersion, bin)
		case cfg.smoke:
			logf("distribution v3 not available, running Coffer alone: %v", err)
			peerNote = "distribution v3 could not be installed: Coffer alone, no ratios (" + firstLine(err.Error()) + ")"
		default:
			fmt.Fprintf(os.Stderr, "bench: a full run needs distribution v3: %v\n", err)
			return 1
		}
	} else {
		peerNote = "run with -peer=false: Coffer alone, no ratios"
	}
	var notMeasured []string
	for _, v := range variants {
		if !cfg.wants(v) {
			continue
		}
		if v.Available && v.Backends != nil {
			// PostgreSQL and versitygw: like distribution, a smoke run
			// goes on without them and says so; a full run needs them.
			ictx, cancel := context.WithTimeout(ctx, cfg.installTimeout)
			err := backendsAvailable(ictx, filepath.Join(root, ".tools", "bin"))
			cancel()
			if err != nil && !cfg.smoke {
				fmt.Fprintf(os.Stderr, "bench: coffer %s needs its backends: %v\n", v.Name, err)
				return 1
			}
			if err != nil {
				logf("coffer %s not measured: %v", v.Name, err)
				notMeasured = append(notMeasured, fmt.Sprintf("coffer %s not measured: PostgreSQL or versitygw could not be installed (%s)", v.Name, firstLine(err.Error())))
				continue
			}
		}
		if v.Available {
			name := "coffer " + v.Name
			targets = append(targets, &target{Name: name, Coffer: true, variant: v, spec: cofferSpec(name, cofferBin, v, false)})
		}
	}
	if cfg.baselineBin != "" {
		// Another build of Coffer side by side, as the first variant: what
		// a change did, measured in the same run.
		name := fmt.Sprintf("coffer %s @%s", variants[0].Name, cmp.Or(cfg.baselineVersion, "baseline"))
		targets = append(targets, &target{Name: name, Coffer: true, variant: variants[0], spec: cofferSpec(name, cfg.baselineBin, variants[0], false)})
	}

	logf("generating test data and its digests")
	w := &workload{requests: cfg.requests, concurrency: cfg.concurrency}
	if w.big, err = newTestImage("big", cfg.bigLayers, cfg.bigLayer); err == nil {
		w.small, err = newTestImage("small", cfg.smallLayers, cfg.smallLayer)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}

	// A phase that ran on a busy machine (the quiet wait timed out, or
	// others took over 0.6 cores during it) does not count: rounds are
	// added until every phase has -runs clean ones, at most -retries extra
	// rounds. Busy samples stay in the JSON; a figure uses them only if its
	// phase never ran clean, and the noise table says so.
	r := &runner{cfg: cfg, w: w, targets: targets, clean: map[string]int{}}
	if cfg.clientProfile != "" {
		f, err := os.Create(cfg.clientProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: -client-cpuprofile: %v\n", err)
			return 1
		}
		defer f.Close()
	}
	n := 0
	for ctx.Err() == nil {
		n++
		r.measureCeilings(ctx, n)
		r.round(ctx, n, n-1, targets)
		if r.minClean() >= cfg.runs || n >= cfg.runs+cfg.retries {
			break
		}
		logf("round %d: some phase has %d clean round(s) of %d; one more round", n, r.minClean(), cfg.runs)
	}
	r.lastRound = n
	if cfg.clientProfile != "" {
		pprof.StopCPUProfile()
	}

	rep := &report{Meta: newMeta(ctx, cfg, root, w), targets: targets, peer: peer, w: w, quiet: cfg.quiet}
	rep.Meta.Peer, rep.Meta.PeerNote = peerName, peerNote
	if cfg.profileDir != "" && ctx.Err() == nil {
		rep.Profiles = r.profileRound(ctx, cofferBin)
	}
	if ctx.Err() != nil {
		r.fail("interrupted: %v", ctx.Err())
	}
	for _, t := range targets {
		rep.Targets = append(rep.Targets, t.Name)
	}
	for _, v := range variants {
		if !v.Available {
			rep.Missing = append(rep.Missing, fmt.Sprintf("coffer %s: not available yet (issue #%d): needs %s", v.Name, v.Issue, v.Needs))
		}
	}
	rep.Meta.Unmeasured = notMeasured
	rep.Samples, rep.Ceil, rep.Errors = r.samples, r.ceil, r.errs
	rep.Results = compute(w, r.samples, targets, peer, r.lastRound)
	rep.Meta.Rounds = r.lastRound
	rep.Clean = r.clean
	for _, g := range goals {
		for _, t := range targets {
			if v, met, ok := g.verdict(rep.Results, t.Name); ok && t.Coffer {
				rep.Goals = append(rep.Goals, goalVerdict{goal: g, Target: t.Name, Median: v, Met: met})
			}
		}
	}
	for _, c := range ceilings {
		var v []float64
		for _, s := range r.ceil {
			if s.ID == c.ID && s.Err == "" {
				v = append(v, s.MBps)
			}
		}
		st, _ := newStat(v)
		rep.Ceilings = append(rep.Ceilings, ceilingStat{ID: c.ID, Title: c.Title, MBps: st})
	}

	rep.markdown(os.Stdout)
	if cfg.jsonPath != "" {
		if err := writeJSON(cfg.jsonPath, rep); err != nil {
			fmt.Fprintf(os.Stderr, "bench: write %s: %v\n", cfg.jsonPath, err)
			return 1
		}
	}
	if len(r.errs) > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d failure(s)\n", len(r.errs))
		return 1
	}
	return 0
}

// peerBinary returns distribution v3's binary: the one given, or the
// project's tools copy, installed if needed within the install timeout.
func peerBinary(ctx context.Context, cfg config, root string) (string, error) {
	if cfg.registryBin != "" {
		if _, err := os.Stat(cfg.registryBin); err != nil {
			return "", err
		}
		return cfg.registryBin, nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.installTimeout)
	defer cancel()
	return installDistribution(ctx, filepath.Join(root, ".tools", "bin"))
}

// profileRound runs every phase once more on each Coffer target with
// pprof on, capturing profiles; its figures are not reported.
func (r *runner) profileRound(ctx context.Context, cofferBin string) []string {
	if err := os.MkdirAll(r.cfg.profileDir, 0o755); err != nil {
		r.fail("profile: %v", err)
		return nil
	}
	var coffers []*target
	for _, t := range r.targets {
		if t.Coffer {
			coffers = append(coffers, t)
		}
	}
	p := &profiler{dir: r.cfg.profileDir, seconds: profileSeconds(r.cfg.profileSeconds, r.samples)}
	r.profile = p
	defer func() { r.profile = nil }()
	logf("profiling round: %d Coffer target(s), profiles into %s", len(coffers), p.dir)
	r.round(ctx, r.lastRound+1, 0, coffers)
	// Keep the binary next to its profiles: `go tool pprof DIR/coffer
	// FILE` then also disassembles.
	if b, err := os.ReadFile(cofferBin); err == nil {
		if err := writeFile(p.dir, "coffer", b); err == nil {
			_ = os.Chmod(filepath.Join(p.dir, "coffer"), 0o755)
		}
	}
	return p.files
}
