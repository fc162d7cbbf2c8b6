package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"
)

// profiler captures Coffer's profiles in an extra round after the measured
// ones, so that profiling never perturbs a figure in the table. For each
// phase a CPU profile (GET /debug/pprof/profile?seconds=N) starts when the
// phase starts and the next phase waits until it has been written; N is
// the phase's median duration in the measured rounds, with a margin, so a
// profile covers its phase and little idle time. The pushes also get an
// execution trace (see tracedPhases), and after the big push a heap profile
// is taken.
type profiler struct {
	dir     string
	seconds func(target, phase string) int
	files   []string
}

// profileJob is the profiles being captured during one phase.
type profileJob struct {
	fetches []*fetchJob
}

type fetchJob struct {
	name string
	done chan struct{}
	body []byte
	err  error
}

// tracedPhases also get an execution trace: their time goes to waiting
// (fsync, the database's single writer), which a CPU profile cannot show;
// `go tool trace -pprof=syscall` and `-pprof=sync` can.
var tracedPhases = map[string]bool{phasePushBig: true, phasePushSmall: true}

func (p *profiler) startCPU(ctx context.Context, l *live, phaseID string) *profileJob {
	secs := p.seconds(l.Name, phaseID)
	base := fmt.Sprintf("http://%s/debug/pprof/", l.srv.pprof)
	j := &profileJob{}
	get := func(name, url string) {
		f := &fetchJob{name: name, done: make(chan struct{})}
		j.fetches = append(j.fetches, f)
		go func() {
			defer close(f.done)
			f.body, f.err = fetch(ctx, url, time.Duration(secs)*time.Second+30*time.Second)
		}()
	}
	prefix := slug(l.Name) + "-" + phaseID
	get(prefix+".cpu.pprof", fmt.Sprintf("%sprofile?seconds=%d", base, secs))
	if tracedPhases[phaseID] {
		get(prefix+".trace", fmt.Sprintf("%strace?seconds=%d", base, secs))
	}
	// The handlers start profiling when the request arrives; give them a
	// moment so that the phase's first milliseconds count.
	time.Sleep(20 * time.Millisecond)
	return j
}

func (p *profiler) finish(j *profileJob) {
	for _, f := range j.fetches {
		<-f.done
		p.save(f.name, f.body, f.err)
	}
}

func (p *profiler) heap(ctx context.Context, l *live, phaseID string) {
	name := fmt.Sprintf("%s-%s.heap.pprof", slug(l.Name), phaseID)
	body, err := fetch(ctx, "http://"+l.srv.pprof+"/debug/pprof/heap?gc=1", 30*time.Second)
	p.save(name, body, err)
}

func (p *profiler) save(name string, body []byte, err error) {
	if err == nil {
		err = writeFile(p.dir, name, body)
	}
	if err != nil {
		logf("profile %s: %v", name, err)
		return
	}
	p.files = append(p.files, name)
	logf("wrote %s/%s", p.dir, name)
}

func fetch(ctx context.Context, url string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, firstLine(string(body)))
	}
	return body, nil
}

// profileSeconds returns the profile length for a phase: fixed if asked,
// else 1.2 times the phase's median duration in the measured rounds plus
// one second (at least 1 s, the handler's unit).
func profileSeconds(fixed int, samples []sample) func(target, phase string) int {
	return func(target, phase string) int {
		if fixed > 0 {
			return fixed
		}
		var d []float64
		for _, s := range samples {
			if s.Target == target && s.Phase == phase && s.Err == "" {
				d = append(d, s.Seconds)
			}
		}
		if len(d) == 0 {
			return 10
		}
		return int(math.Ceil(1.2*median(d))) + 1
	}
}
