package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// The replicas benchmark (-replicas) is issue #9's throughput figure: 16
// concurrent clients push images and then pull them, through one Coffer
// replica and through two replicas on the same PostgreSQL database and
// the same bucket (client i talks to replica i mod n). Both setups run in
// every round, in alternating order, on backends started once (the
// second setup reuses the data of neither: each round pushes to
// repositories of its own). It reports, per setup, the push and pull
// throughput (MB/s of layer bytes, median and range over the rounds), the
// ratio two replicas ÷ one, and where the machine's CPU went during each
// phase (the replicas, PostgreSQL, versitygw, this process — the clients
// — and the machine's total), so that the figure says which resource
// saturated.
const (
	replicaClients = 16
	// Each client's image: replicaLayers random layers of replicaLayer
	// bytes, its own (no layer is shared between clients).
	replicaLayers = 4
	replicaLayer  = 2 << 20
)

type replicaSample struct {
	setup      int // replicas
	push, pull float64
	cpu        map[string][2]float64 // phase CPU seconds per process group: [push, pull]
	wall       [2]float64
	machine    [2]float64 // machine tasks CPU seconds
}

func runReplicas(ctx context.Context, cfg config, cofferBin string) int {
	layers, layer := replicaLayers, int64(replicaLayer)
	rounds := cfg.runs
	if cfg.smoke {
		layers, layer, rounds = 2, 256<<10, 1
	}
	logf("replicas: starting PostgreSQL and versitygw")
	args, env, stopBackends, err := postgresS3(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: replicas: %v\n", err)
		return 1
	}
	defer stopBackends()
	key := make([]byte, 32)
	rand.Read(key)
	env = append(env, "COFFER_ROOT_KEY="+base64.StdEncoding.EncodeToString(key))

	var samples []replicaSample
	for r := 0; r < rounds; r++ {
		order := []int{1, 2}
		if r%2 == 1 {
			order = []int{2, 1}
		}
		for _, n := range order {
			s, err := replicaRound(ctx, cofferBin, args, env, n, r, layers, layer)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: replicas: round %d, %d replica(s): %v\n", r+1, n, err)
				return 1
			}
			logf("replicas: round %d, %d replica(s): push %.1f MB/s, pull %.1f MB/s", r+1, n, s.push, s.pull)
			samples = append(samples, s)
		}
	}
	fmt.Print(replicaReport(samples, rounds, layers, layer))
	return 0
}

// backendProcesses finds the PIDs of the PostgreSQL and versitygw
// processes by name, for the CPU accounting.
func backendProcesses() map[string][]int {
	out := map[string][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid := 0
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		switch c := strings.TrimSpace(string(comm)); {
		case c == "postgres":
			out["PostgreSQL"] = append(out["PostgreSQL"], pid)
		case c == "versitygw":
			out["versitygw"] = append(out["versitygw"], pid)
		}
	}
	return out
}

func replicaRound(ctx context.Context, bin string, args, env []string, n, round, layers int, layer int64) (replicaSample, error) {
	s := replicaSample{setup: n, cpu: map[string][2]float64{}}
	var servers []*server
	defer func() {
		for _, sv := range servers {
			sv.stop(false)
		}
	}()
	for i := 0; i < n; i++ {
		sv, err := start(ctx, spec{
			name: fmt.Sprintf("coffer replica %d", i+1),
			argv: func(dir, addr, _ string) ([]string, error) {
				return append([]string{bin, "serve", "--listen", addr, "--data", filepath.Join(dir, "data"),
					"--create-on-push", "--insecure-allow-anonymous", "--log-level", "warn"}, args...), nil
			},
			env:   env,
			ready: "/readyz",
		})
		if err != nil {
			return s, err
		}
		servers = append(servers, sv)
	}
	imgs := make([]*testImage, replicaClients)
	for i := range imgs {
		img, err := newTestImage(fmt.Sprintf("replicas/%d/%d/%d", round, n, i), layers, layer)
		if err != nil {
			return s, err
		}
		imgs[i] = img
	}
	clients := make([]*client, replicaClients)
	for i := range clients {
		clients[i] = newClient(ctx, servers[i%n].addr, access{}, 2)
		defer clients[i].close()
	}
	repo := func(i int) string { return fmt.Sprintf("r%d-n%d-c%d", round, n, i) }
	phase := func(k int, fn func(i int) result) (float64, error) {
		// PostgreSQL forks a backend per connection: list the processes
		// at the start of each phase.
		groups := map[string][]int{"this process (clients)": {0}}
		for name, pids := range backendProcesses() {
			groups[name] = pids
		}
		for _, sv := range servers {
			groups["Coffer replicas"] = append(groups["Coffer replicas"], sv.pid())
		}
		before := map[string]map[int]float64{}
		for g, pids := range groups {
			before[g] = pidCPU(pids)
		}
		sys0, _ := readSysCPU()
		t0 := time.Now()
		var wg sync.WaitGroup
		res := make([]result, replicaClients)
		for i := range replicaClients {
			wg.Add(1)
			go func() { defer wg.Done(); res[i] = fn(i) }()
		}
		wg.Wait()
		wall := time.Since(t0).Seconds()
		sys1, _ := readSysCPU()
		var bytes int64
		for _, r := range res {
			if r.err != nil {
				return 0, r.err
			}
			bytes += r.bytes
		}
		for g, pids := range groups {
			c := s.cpu[g]
			for pid, t := range pidCPU(pids) {
				if t0, ok := before[g][pid]; ok {
					c[k] += t - t0
				}
			}
			s.cpu[g] = c
		}
		s.wall[k] = wall
		s.machine[k] = sys1.Tasks + sys1.IRQ - sys0.Tasks - sys0.IRQ
		return float64(bytes) / wall / 1e6, nil
	}
	var err error
	if s.push, err = phase(0, func(i int) result { return pushImage(clients[i], repo(i), imgs[i]) }); err != nil {
		return s, fmt.Errorf("push: %w", err)
	}
	// Pull through another replica than the one that took the push.
	for i := range clients {
		clients[i].close()
		clients[i] = newClient(ctx, servers[(i+1)%n].addr, access{}, 2)
	}
	if s.pull, err = phase(1, func(i int) result { return pullImage(clients[i], repo(i), imgs[i]) }); err != nil {
		return s, fmt.Errorf("pull: %w", err)
	}
	for _, sv := range servers {
		if err := sv.check(); err != nil {
			return s, err
		}
	}
	return s, nil
}

// pidCPU returns the CPU seconds of the processes still running.
func pidCPU(pids []int) map[int]float64 {
	out := make(map[int]float64, len(pids))
	for _, p := range pids {
		if c, err := procCPU(p); err == nil {
			out[p] = c
		}
	}
	return out
}

func replicaReport(samples []replicaSample, rounds, layers int, layer int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Replicas: %d clients, each pushing then pulling %d × %s layers (%d rounds)\n\n",
		replicaClients, layers, size(layer), rounds)
	by := func(n int, f func(replicaSample) float64) []float64 {
		var v []float64
		for _, s := range samples {
			if s.setup == n {
				v = append(v, f(s))
			}
		}
		return v
	}
	// The harness's summaries: median (min–max) over the rounds.
	med := func(v []float64, suffix string) string {
		st, ok := newStat(v)
		if !ok {
			return "–"
		}
		return cell(st, suffix)
	}
	push := func(s replicaSample) float64 { return s.push }
	pull := func(s replicaSample) float64 { return s.pull }
	fmt.Fprintf(&b, "| setup | push MB/s | pull MB/s |\n|---|---:|---:|\n")
	for _, n := range []int{1, 2} {
		fmt.Fprintf(&b, "| %d replica(s) | %s | %s |\n", n, med(by(n, push), ""), med(by(n, pull), ""))
	}
	ratio := func(f func(replicaSample) float64) []float64 {
		one, two := by(1, f), by(2, f)
		var v []float64
		for i := range min(len(one), len(two)) {
			if one[i] > 0 {
				v = append(v, two[i]/one[i])
			}
		}
		return v
	}
	fmt.Fprintf(&b, "| 2 ÷ 1, same round | %s | %s |\n\n", med(ratio(push), "×"), med(ratio(pull), "×"))
	fmt.Fprintf(&b, "Where the CPU went (cores busy = CPU seconds ÷ wall seconds, median; the machine has %d):\n\n", runtime.NumCPU())
	var groups []string
	for _, s := range samples {
		for g := range s.cpu {
			if !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
	}
	slices.Sort(groups)
	fmt.Fprintf(&b, "| setup, phase | %s | machine |\n|---|%s---:|\n", strings.Join(groups, " | "), strings.Repeat("---:|", len(groups)))
	for _, n := range []int{1, 2} {
		for k, ph := range []string{"push", "pull"} {
			fmt.Fprintf(&b, "| %d replica(s), %s |", n, ph)
			for _, g := range groups {
				fmt.Fprintf(&b, " %s |", cores(by(n, func(s replicaSample) float64 { return s.cpu[g][k] / s.wall[k] })))
			}
			fmt.Fprintf(&b, " %s |\n", cores(by(n, func(s replicaSample) float64 { return s.machine[k] / s.wall[k] })))
		}
	}
	return b.String()
}

// cores is the median of busy cores, to the hundredth.
func cores(v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", median(v))
}
