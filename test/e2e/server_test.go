//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	readyTimeout = 30 * time.Second // start-up until /readyz answers 200
	stopTimeout  = 15 * time.Second // SIGTERM until exit, then SIGKILL
	logTailBytes = 64 << 10         // server stderr shown on failure
)

// coffer is one coffer process (and its restarts) owned by a test: a data
// directory, a 127.0.0.1 address, and the stderr of every run.
type coffer struct {
	t    *testing.T
	Dir  string // --data
	Addr string // --listen, host:port; kept across restarts

	logs  syncBuffer // stderr of all runs, with a marker line per start
	runs  int
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has exited
	exitE error         // cmd.Wait's result, valid after done

	// client has no keep-alive state shared across restarts.
	client *http.Client
	// token is the registry password from `aws ecr get-login-password`,
	// valid across restarts on the same data directory.
	token string
	// Args and Env are extra serve flags and environment (KEY=value) of
	// every run, set by startCoffer's options.
	Args, Env []string
}

// The administrator the harness starts Coffer with (issue #3: no anonymous
// access; tests log in as AWS users would).
const (
	adminKeyID  = "AKIAE2EADMINKEY00001"
	adminSecret = "e2e-admin-secret-0123456789abcdefghij"
)

// startCoffer starts coffer with a new data directory and fails the test
// if it does not become ready. It is stopped when the test ends; if the
// test failed, the tail of its stderr goes to the test log.
func startCoffer(t *testing.T, opts ...func(*coffer)) *coffer {
	t.Helper()
	c := &coffer{t: t, Dir: t.TempDir()}
	for _, o := range opts {
		o(c)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("coffer stderr (%d runs, last %d KiB at most):\n%s", c.runs, logTailBytes>>10, c.logs.Tail(logTailBytes))
		}
	})
	t.Cleanup(func() {
		if c.Running() {
			c.Stop()
		}
	})
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		c.Addr = freeAddr(t)
		if err = c.start(); err == nil {
			return c
		}
		// Another process may have taken the port between probe and bind.
		if !strings.Contains(c.logs.String(), "address already in use") {
			break
		}
	}
	t.Fatalf("coffer did not start: %v", err)
	return nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("probe free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func (c *coffer) start() error {
	c.runs++
	fmt.Fprintf(&c.logs, "=== coffer run %d: serve --listen %s --data %s --create-on-push %s\n", c.runs, c.Addr, c.Dir, strings.Join(c.Args, " "))
	cmd := exec.Command(cofferBin, append([]string{"serve", "--listen", c.Addr, "--data", c.Dir, "--create-on-push"}, c.Args...)...)
	// Only this test's flags configure it: no COFFER_* from the caller.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COFFER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "COFFER_ADMIN_ACCESS_KEY_ID="+adminKeyID, "COFFER_ADMIN_SECRET_ACCESS_KEY="+adminSecret)
	cmd.Env = append(cmd.Env, c.Env...)
	cmd.Stdout = &c.logs
	cmd.Stderr = &c.logs
	// Its own process group: a ^C to `go test` must not reach it first,
	// and Kill must target exactly this PID.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cofferBin, err)
	}
	c.cmd = cmd
	c.done = make(chan struct{})
	go func() {
		c.exitE = cmd.Wait()
		close(c.done)
	}()
	c.client = &http.Client{Transport: newTransport(), Timeout: 30 * time.Second}

	deadline := time.Now().Add(readyTimeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("coffer exited during start-up (%v); stderr:\n%s", c.exitE, c.logs.Tail(8<<10))
		default:
		}
		resp, err := c.client.Get(c.URL("/readyz"))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Kill()
	return fmt.Errorf("GET /readyz not 200 within %v (last: %s)", readyTimeout, last)
}

func newTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // never send loopback traffic to a proxy from the environment
	return tr
}

// Running reports whether the current process has not exited yet.
func (c *coffer) Running() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// PID is the process ID of the current run.
func (c *coffer) PID() int { return c.cmd.Process.Pid }

// URL is http://Addr + path.
func (c *coffer) URL(path string) string { return "http://" + c.Addr + path }

// Stop sends SIGTERM, waits for the exit, and SIGKILLs after stopTimeout.
// A graceful stop must exit 0 in time: anything else fails the test.
func (c *coffer) Stop() {
	c.t.Helper()
	if !c.Running() {
		return
	}
	c.client.Transport.(*http.Transport).CloseIdleConnections()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Errorf("SIGTERM coffer pid %d: %v", c.PID(), err)
	}
	select {
	case <-c.done:
		if c.exitE != nil {
			c.t.Errorf("coffer pid %d exited with %v after SIGTERM (want exit status 0)", c.PID(), c.exitE)
		}
	case <-time.After(stopTimeout):
		c.t.Errorf("coffer pid %d still running %v after SIGTERM; sending SIGKILL", c.PID(), stopTimeout)
		c.Kill()
	}
}

// Kill sends SIGKILL to the current run and waits until it is gone.
func (c *coffer) Kill() {
	c.t.Helper()
	if !c.Running() {
		return
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Errorf("SIGKILL coffer pid %d: %v", c.PID(), err)
	}
	select {
	case <-c.done:
	case <-time.After(stopTimeout):
		c.t.Fatalf("coffer pid %d did not die within %v of SIGKILL", c.PID(), stopTimeout)
	}
	c.client.Transport.(*http.Transport).CloseIdleConnections()
}

// Restart starts coffer again on the same address and data directory.
func (c *coffer) Restart() {
	c.t.Helper()
	if c.Running() {
		c.t.Fatalf("Restart: coffer pid %d is still running", c.PID())
	}
	if err := c.start(); err != nil {
		c.t.Fatalf("restart coffer: %v", err)
	}
}

// procStatusKiB reads a "Name:   123 kB" field of /proc/PID/status.
func procStatusKiB(pid int, field string) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, rest, ok := strings.Cut(s.Text(), ":")
		if !ok || name != field {
			continue
		}
		v := strings.Fields(rest)
		if len(v) != 2 || v[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: odd %s line %q", pid, field, s.Text())
		}
		return strconv.ParseInt(v[0], 10, 64)
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// rssSampler records the maximum VmRSS of a process, sampled every 100 ms.
type rssSampler struct {
	pid    int
	stop   chan struct{}
	done   chan struct{}
	maxKiB int64
	n      int
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, err := procStatusKiB(pid, "VmRSS"); err == nil {
				s.n++
				s.maxKiB = max(s.maxKiB, v)
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the largest VmRSS seen and the sample count.
func (s *rssSampler) Stop() (maxKiB int64, samples int) {
	close(s.stop)
	<-s.done
	return s.maxKiB, s.n
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Tail returns at most the last n bytes, starting at a line boundary.
func (s *syncBuffer) Tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b.Bytes()
	if len(b) <= n {
		return string(b)
	}
	b = b[len(b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return "[...]\n" + string(b)
}

// testContext is a context that ends at the test's deadline (minus a
// margin for cleanup) or after limit, whichever comes first.
func testContext(t *testing.T, limit time.Duration) context.Context {
	t.Helper()
	deadline := time.Now().Add(limit)
	if d, ok := t.Deadline(); ok && d.Add(-30*time.Second).Before(deadline) {
		deadline = d.Add(-30 * time.Second)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}
