package fs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/storage"
)

// TestCrashLeavesNoPartialObject abandons a Writer, as a crash would, and
// opens a new Driver on the same root.
func TestCrashLeavesNoPartialObject(t *testing.T) {
	root := t.TempDir()
	d1, err := New(Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	put(t, d1, "ok", []byte("committed"))
	w, err := d1.Writer(t.Context(), "dir/partial")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte("p"), 3<<20)); err != nil {
		t.Fatal(err)
	}
	// A stray directory in staging (not written by this version) goes too.
	if err := os.MkdirAll(filepath.Join(root, stagingDir, "stray", "x"), 0o700); err != nil {
		t.Fatal(err)
	}

	d2 := newTestDriver(t, root)
	if names := stagingEntries(t, root); len(names) != 0 {
		t.Fatalf("staging after restart: %q", names)
	}
	if _, err := d2.Stat(t.Context(), "dir/partial"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(partial) = %v, want ErrNotFound", err)
	}
	if got := walkKeys(t, d2, ""); !slices.Equal(got, []string{"ok"}) {
		t.Fatalf("Walk = %q, want [ok]", got)
	}
	// The abandoned Writer lost its staging file: its Commit fails and
	// publishes nothing.
	if err := w.Commit(t.Context()); err == nil {
		t.Fatal("Commit of a writer whose staging file was cleaned up succeeded")
	}
	if _, err := d2.Stat(t.Context(), "dir/partial"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(partial) after stale Commit = %v, want ErrNotFound", err)
	}
	d1.Close()
}

const crashEnv = "COFFER_FS_CRASH_CHILD_ROOT"

// crashVersion is version v of the object the child keeps overwriting.
func crashVersion(v int) []byte {
	return bytes.Repeat([]byte{byte('a' + v%26)}, 256<<10+v%26*1000)
}

// TestKillDuringWrites re-runs the test binary as a child that commits
// objects in a loop and streams a never-committed one, kills it with SIGKILL
// mid-stream, and checks what a new Driver sees.
func TestKillDuringWrites(t *testing.T) {
	if root := os.Getenv(crashEnv); root != "" {
		crashChild(root)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for attempt := range 3 {
		t.Run(fmt.Sprint("kill", attempt), func(t *testing.T) {
			root := t.TempDir()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, "-test.run=^TestKillDuringWrites$")
			cmd.Env = append(os.Environ(), crashEnv+"="+root)
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ready := false
			for sc := bufio.NewScanner(stdout); !ready && sc.Scan(); {
				ready = sc.Text() == "ready"
			}
			if !ready {
				cmd.Wait()
				t.Fatal("child exited before it was ready")
			}
			// Let the child overwrite and stream for a varying while.
			time.Sleep(time.Duration(20+attempt*40) * time.Millisecond)
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			cmd.Wait()

			d := newTestDriver(t, root)
			if got, err := readAll(t, d, "committed"); err != nil || string(got) != "done" {
				t.Fatalf("committed = %q, %v", got, err)
			}
			if _, err := d.Stat(t.Context(), "big/partial"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("Stat(partial) = %v, want ErrNotFound", err)
			}
			got, err := readAll(t, d, "flip")
			if err != nil {
				t.Fatal(err)
			}
			complete := false
			for v := range 26 {
				complete = complete || bytes.Equal(got, crashVersion(v))
			}
			if !complete {
				t.Fatalf("flip holds %d bytes that are no complete version", len(got))
			}
			if names := stagingEntries(t, root); len(names) != 0 {
				t.Fatalf("staging after restart: %q", names)
			}
		})
	}
}

// crashChild runs in the child process until it is killed (or a deadline
// passes, so an orphan never lingers).
func crashChild(root string) {
	d, err := New(Config{Root: root})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	commit := func(key string, data []byte) {
		w, err := d.Writer(ctx, key)
		must(err)
		_, err = w.Write(data)
		must(err)
		must(w.Commit(ctx))
	}
	commit("committed", []byte("done"))
	commit("flip", crashVersion(0))
	partial, err := d.Writer(ctx, "big/partial")
	must(err)
	fmt.Println("ready")
	chunk := bytes.Repeat([]byte("x"), 100_003)
	deadline := time.Now().Add(30 * time.Second)
	for v := 1; time.Now().Before(deadline); v++ {
		_, err := partial.Write(chunk)
		must(err)
		commit("flip", crashVersion(v))
	}
	os.Exit(3)
}
