package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat and /proc/stat. It is
// 100 on every Linux architecture Go supports (the kernel fixes it for the
// ABI whatever CONFIG_HZ is).
const clockTicks = 100

// procCPU returns a process's CPU time (utime + stime, all threads) in
// seconds, from /proc/<pid>/stat; pid 0 means this process.
func procCPU(pid int) (float64, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no ')'", path)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields", path, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: bad utime/stime %q %q", path, f[11], f[12])
	}
	return float64(ut+st) / clockTicks, nil
}

// sysCPU is the machine's CPU time from the first line of /proc/stat, in
// seconds summed over all cores.
type sysCPU struct {
	Tasks float64 // user + nice + system: time charged to processes
	IRQ   float64 // irq + softirq: mostly the loopback traffic of the benchmark itself
	Steal float64 // taken by the hypervisor for other guests
}

func readSysCPU() (sysCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return sysCPU{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return sysCPU{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	v := make([]float64, 8)
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return sysCPU{}, fmt.Errorf("/proc/stat: %w", err)
		}
		v[i] = float64(n) / clockTicks
	}
	// user nice system idle iowait irq softirq steal
	return sysCPU{Tasks: v[0] + v[1] + v[2], IRQ: v[5] + v[6], Steal: v[7]}, nil
}

// procStatus returns a /proc/<pid>/status field given in kB, in bytes.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s of %d: %w", field, pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// resetPeakRSS resets VmHWM of pid to its current RSS (clear_refs "5",
// Linux 4.0+), so that VmHWM read at the end of a phase is that phase's
// peak. It fails without permission to ptrace pid; callers then rely on the
// sampled peak.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// rssSampler samples VmRSS of a set of processes every interval and keeps
// the maximum of each.
type rssSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	mu   sync.Mutex
	max  map[int]int64
}

func startRSSSampler(interval time.Duration, pids ...int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), max: make(map[int]int64)}
	sample := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, pid := range pids {
			if rss, err := procStatus(pid, "VmRSS"); err == nil && rss > s.max[pid] {
				s.max[pid] = rss
			}
		}
	}
	sample()
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				sample()
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the peak VmRSS seen per pid.
func (s *rssSampler) Stop() map[int]int64 {
	close(s.stop)
	s.done.Wait()
	return s.max
}

// prewarm writes n bytes to a scratch file in the temp directory (the
// servers' file system) and deletes it, without fsync, so that n bytes of
// page cache were just freed when the next phase starts.
//
// Why: on a VM whose balloon reports free pages to the host (Firecracker
// here), memory the guest frees is handed back to the host a few seconds
// later, and the next writer into the page cache pays a host page fault per
// page. Measured here: writing 1 GiB to a new file takes 0.2 s right after
// another file was deleted and 1.0-2.0 s once the memory went back; in a
// full run the first registry to push in a round (into memory freed by the
// previous round) used 1.8 s of CPU per GiB and the ones after it 3.2-4.9 s,
// whichever registry it was. Freeing fresh page cache right before each big
// push gives every registry the same, host-backed memory, as on bare metal
// (where this costs a second and changes nothing).
func prewarm(n int64) error {
	f, err := os.CreateTemp("", "coffer-bench-prewarm-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1<<20)
	for done := int64(0); done < n; done += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
