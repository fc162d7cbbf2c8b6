package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// target is one registry configuration measured in every round: the peer
// or a Coffer variant.
type target struct {
	Name    string // column and row label: "distribution v3.0.0", "coffer AES256"
	Coffer  bool
	variant variant
	spec    spec
}

// live is a target during one round: its fresh server and client.
type live struct {
	*target
	srv    *server
	cl     *client
	failed bool
}

// sample is one phase of one target in one round: everything measured.
type sample struct {
	Round     int     `json:"round"`
	Target    string  `json:"target"`
	Phase     string  `json:"phase"`
	Seconds   float64 `json:"seconds"`
	Bytes     int64   `json:"bytes"`
	Ops       int     `json:"ops"`
	ServerCPU float64 `json:"server_cpu_seconds"`
	ClientCPU float64 `json:"harness_cpu_seconds"`
	// Noise is other processes' CPU plus hypervisor steal during the phase,
	// in cores: /proc/stat user+nice+system minus the servers' and the
	// harness's own, plus steal. IRQ (irq+softirq, mostly the phase's own
	// loopback traffic) is kept apart.
	Noise      float64 `json:"noise_cores"`
	IRQ        float64 `json:"irq_cores"`
	PeakRSS    int64   `json:"peak_rss_bytes"`    // max of VmHWM (reset at phase start) and sampled VmRSS
	SampledRSS int64   `json:"sampled_rss_bytes"` // max VmRSS sampled every 50 ms
	HWMReset   bool    `json:"hwm_reset"`         // VmHWM was reset at phase start
	// Busy: in this round this phase ran on a busy machine for some target
	// (see round); busy samples are left out of a figure that has clean ones.
	Busy  bool    `json:"busy,omitempty"`
	P50ms float64 `json:"p50_ms,omitempty"`
	P99ms float64 `json:"p99_ms,omitempty"`
	Err   string  `json:"error,omitempty"`
}

// runner holds what every round shares.
type runner struct {
	cfg     config
	w       *workload
	targets []*target
	samples []sample
	ceil    []ceilingSample
	errs    []string
	profile *profiler // nil unless this is the profiling round

	lastRound int            // rounds run
	clean     map[string]int // per phase: rounds in which it ran clean on every target
}

type ceilingSample struct {
	Round int     `json:"round"`
	ID    string  `json:"id"`
	MBps  float64 `json:"mb_per_s"`
	Err   string  `json:"error,omitempty"`
}

func (r *runner) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.errs = append(r.errs, msg)
	logf("FAIL: %s", msg)
}

// measureCeilings runs each hardware ceiling once.
func (r *runner) measureCeilings(ctx context.Context, round int) {
	r.waitQuiet(ctx, round, "ceilings", nil)
	for _, c := range ceilings {
		v, err := c.run(r.cfg.ceilingBytes)
		s := ceilingSample{Round: round, ID: c.ID, MBps: v}
		if err != nil {
			s.Err = err.Error()
			r.fail("round %d: ceiling %s: %v", round, c.ID, err)
		}
		r.ceil = append(r.ceil, s)
		logf("round %d: ceiling %-8s %7.0f MB/s", round, c.ID, v)
	}
}

// round starts a fresh server per target, runs every phase on each target
// in turn, then stops them. Within a phase the targets alternate, and the
// order rotates by one every round (A B C, B C A, C A B), so that over the
// rounds each target runs in each position: drift of a noisy machine, and
// the memory the VM has unbacked meanwhile (see prewarm), fall on all alike.
func (r *runner) round(ctx context.Context, n, rotate int, targets []*target) {
	var lives []*live
	defer func() {
		for _, l := range lives {
			if l.cl != nil {
				l.cl.close()
			}
			l.srv.stop(r.cfg.keep)
		}
	}()
	for _, t := range targets {
		sp := t.spec
		sp.pprof = r.profile != nil
		srv, err := start(ctx, sp)
		if err != nil {
			r.fail("round %d: %v", n, err)
			continue
		}
		l := &live{target: t, srv: srv}
		lives = append(lives, l)
		acc := access{}
		if t.variant.Setup != nil {
			if acc, err = t.variant.Setup(ctx, srv, r.w.repos(acc.namespace())); err != nil {
				r.fail("round %d: setup %s: %v", n, t.Name, err)
				l.failed = true
				continue
			}
		}
		l.cl = newClient(ctx, srv.addr, acc, r.cfg.jobs)
	}
	order := slices.Clone(lives)
	if len(order) > 0 {
		k := rotate % len(order)
		order = append(order[k:], order[:k]...)
	}
	for _, p := range phases {
		busy := r.waitQuiet(ctx, n, p.ID, lives)
		first := len(r.samples)
		for _, l := range order {
			if l.failed || ctx.Err() != nil {
				continue
			}
			s := r.measure(ctx, n, l, lives, p)
			// The wait only proves the machine was quiet when the phase
			// started; a phase long enough to read (10 ms ticks) during
			// which others took more than twice the threshold is busy too.
			busy = busy || (r.cfg.quiet > 0 && s.Seconds >= 0.5 && s.Noise > max(2*r.cfg.quiet, 0.5))
			if s.Err != "" {
				l.failed = true
				r.fail("round %d: %s %s: %s", n, l.Name, p.ID, s.Err)
			}
			if r.profile == nil {
				r.samples = append(r.samples, s)
			}
			logf("round %d: %-22s %-10s %s", n, l.Name, p.ID, s.summary())
		}
		// A phase compares the targets with each other: if the machine
		// was busy for one of them, the whole phase of this round is.
		if r.profile == nil {
			for i := first; i < len(r.samples); i++ {
				r.samples[i].Busy = busy
			}
			if busy {
				logf("round %d: %s ran on a busy machine: left out of the figures if other rounds are clean", n, p.ID)
			} else if ctx.Err() == nil {
				r.clean[p.ID]++
			}
		}
	}
}

// minClean is the fewest clean rounds any phase has had.
func (r *runner) minClean() int {
	m := -1
	for _, p := range phases {
		if m < 0 || r.clean[p.ID] < m {
			m = r.clean[p.ID]
		}
	}
	return m
}

// waitQuiet waits, before a phase, until processes other than the servers
// and the harness use less than -quiet cores over a second, for at most
// -quiet-wait. It reports whether it gave up (the phase then runs on a busy
// machine and its samples are marked). All targets of a phase run right
// after one wait, so they see the same machine.
func (r *runner) waitQuiet(ctx context.Context, n int, phaseID string, lives []*live) (busy bool) {
	if r.cfg.quiet <= 0 || r.cfg.quietWait <= 0 {
		return false
	}
	pids := make([]int, 0, len(lives))
	for _, l := range lives {
		pids = append(pids, l.srv.pid())
	}
	t0 := time.Now()
	for {
		other := otherCPU(ctx, time.Second, pids)
		if other < r.cfg.quiet {
			if w := time.Since(t0); w > 2*time.Second {
				logf("round %d: waited %.0f s for a quiet machine before %s", n, w.Seconds(), phaseID)
			}
			return false
		}
		if time.Since(t0) > r.cfg.quietWait || ctx.Err() != nil {
			logf("round %d: machine still busy (%.2f cores used by others) after %s; running %s anyway", n, other, r.cfg.quietWait, phaseID)
			return true
		}
	}
}

// otherCPU returns the cores used over window by processes other than
// pids and the harness, plus steal.
func otherCPU(ctx context.Context, window time.Duration, pids []int) float64 {
	c0, self0, sys0 := cpuOf(pids), mustCPU(0), mustSys()
	select {
	case <-ctx.Done():
	case <-time.After(window):
	}
	c1, self1, sys1 := cpuOf(pids), mustCPU(0), mustSys()
	other := (sys1.Tasks - sys0.Tasks) - (self1 - self0)
	for _, p := range pids {
		other -= c1[p] - c0[p]
	}
	return (max(other, 0) + sys1.Steal - sys0.Steal) / window.Seconds()
}

// measure runs one phase on one target and returns what was measured.
func (r *runner) measure(ctx context.Context, n int, l *live, all []*live, p phase) sample {
	s := sample{Round: n, Target: l.Name, Phase: p.ID}
	// Flush whatever earlier phases left dirty (directory entries, logs,
	// the harness's own files), so that it is not charged to the next one.
	syscall.Sync()
	if p.prepare != nil {
		if err := p.prepare(ctx, r.w, l.cl); err != nil {
			s.Err = "prepare: " + err.Error()
			return s
		}
	}
	if p.ID == phasePushBig && r.cfg.prewarm {
		if err := prewarm(r.w.big.bytes + r.w.big.bytes/4); err != nil {
			logf("prewarm: %v", err)
		}
	}
	pid := l.srv.pid()
	s.HWMReset = resetPeakRSS(pid) == nil
	pids := make([]int, 0, len(all))
	for _, o := range all {
		pids = append(pids, o.srv.pid())
	}
	cpu0, self0, sys0 := cpuOf(pids), mustCPU(0), mustSys()
	sampler := startRSSSampler(50*time.Millisecond, pid)
	var prof *profileJob
	if r.profile != nil && l.srv.pprof != "" {
		prof = r.profile.startCPU(ctx, l, p.ID)
	}

	t0 := time.Now()
	res := p.run(ctx, r.w, l.cl)
	el := time.Since(t0)

	peaks := sampler.Stop()
	cpu1, self1, sys1 := cpuOf(pids), mustCPU(0), mustSys()
	hwm, _ := procStatus(pid, "VmHWM")
	if prof != nil {
		r.profile.finish(prof)
		if p.ID == phasePushBig {
			r.profile.heap(ctx, l, p.ID)
		}
	}

	s.Seconds, s.Bytes, s.Ops = el.Seconds(), res.bytes, res.ops
	s.ServerCPU = cpu1[pid] - cpu0[pid]
	var servers float64
	for _, q := range pids {
		servers += cpu1[q] - cpu0[q]
	}
	s.ClientCPU = self1 - self0
	other := (sys1.Tasks - sys0.Tasks) - servers - s.ClientCPU
	s.Noise = (max(other, 0) + sys1.Steal - sys0.Steal) / el.Seconds()
	s.IRQ = (sys1.IRQ - sys0.IRQ) / el.Seconds()
	s.SampledRSS = peaks[pid]
	s.PeakRSS = s.SampledRSS
	if s.HWMReset {
		s.PeakRSS = max(s.PeakRSS, hwm)
	}
	if len(res.lat) > 0 {
		s.P50ms = percentile(res.lat, 0.50)
		s.P99ms = percentile(res.lat, 0.99)
	}
	if res.err == nil {
		res.err = l.srv.check()
	}
	if res.err != nil {
		s.Err = res.err.Error()
	}
	return s
}

func (s sample) summary() string {
	if s.Err != "" {
		return "ERROR " + firstLine(s.Err)
	}
	out := fmt.Sprintf("%6.2fs %8.1f MB/s %7.0f ops/s cpu %5.2fs rss %4d MiB noise %.2f",
		s.Seconds, float64(s.Bytes)/s.Seconds/1e6, float64(s.Ops)/s.Seconds, s.ServerCPU, s.PeakRSS>>20, s.Noise)
	if s.P99ms > 0 {
		out += fmt.Sprintf(" p50 %.2fms p99 %.2fms", s.P50ms, s.P99ms)
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func cpuOf(pids []int) map[int]float64 {
	m := make(map[int]float64, len(pids))
	for _, p := range pids {
		m[p] = mustCPU(p)
	}
	return m
}

// mustCPU and mustSys read /proc; on a machine without it the harness
// cannot measure anything, and main checks that up front.
func mustCPU(pid int) float64 {
	v, err := procCPU(pid)
	if err != nil {
		return math.NaN()
	}
	return v
}

func mustSys() sysCPU {
	v, err := readSysCPU()
	if err != nil {
		return sysCPU{Tasks: math.NaN(), IRQ: math.NaN(), Steal: math.NaN()}
	}
	return v
}

// percentile returns the q-quantile of d (nearest rank) in milliseconds.
func percentile(d []time.Duration, q float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i]) / float64(time.Millisecond)
}

// slug makes a target name usable in a file name: "coffer AES256 + auth"
// becomes "coffer-aes256-auth".
func slug(s string) string {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '.'
	})
	return strings.Join(words, "-")
}

// writeFile writes b to dir/name.
func writeFile(dir, name string, b []byte) error {
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}
