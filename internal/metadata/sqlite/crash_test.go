package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
)

// crashEnv, when set, makes TestKillDurability the child: it pushes into
// the database named by the variable and acknowledges each push on stdout,
// until the parent kills it.
const crashEnv = "COFFER_SQLITE_CRASH_CHILD"

const crashRepo = "crash"

// TestKillDurability runs the test binary as a child that pushes images
// (blob commit, then manifest with tag) and prints "ack N" after each push
// returns; the parent SIGKILLs it mid-stream, three times over the same
// database, and checks that every acknowledged push survived and the
// database is intact. kill -9 keeps the OS page cache, so this proves
// commit-before-return and crash recovery, not power-loss ordering; that
// rests on synchronous=FULL (checked in TestPragmas).
func TestKillDurability(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "coffer.db")
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	repo := metadata.Repository{ID: "crash-repo-id", Name: crashRepo, Domain: "aes256",
		EncryptionType: metadata.EncryptionAES256, TagMutability: metadata.TagMutable, CreatedAt: time.Now()}
	if err := s.CreateRepository(t.Context(), repo); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	acked := map[int]bool{}
	for round := range 3 {
		start := round * 1_000_000
		got := runCrashChild(t, path, start, 200+round*150)
		for _, n := range got {
			acked[n] = true
		}
		t.Logf("round %d: %d pushes acknowledged before SIGKILL", round, len(got))

		s := openAt(t, path)
		ctx := t.Context()
		var check string
		if err := s.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
			t.Fatalf("integrity_check after kill = %q, %v", check, err)
		}
		var fk int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_foreign_key_check`).Scan(&fk); err != nil || fk != 0 {
			t.Fatalf("foreign_key_check after kill: %d violations, %v", fk, err)
		}
		for n := range acked {
			m, err := s.ResolveTag(ctx, repo.ID, crashTag(n))
			if err != nil {
				t.Fatalf("acknowledged push %d lost: %v", n, err)
			}
			if _, err := s.BlobLinked(ctx, repo.ID, crashDigest("layer", n)); err != nil {
				t.Fatalf("acknowledged blob %d lost: %v", n, err)
			}
			if m.Digest != crashDigest("manifest", n) {
				t.Fatalf("tag %s points at %s", crashTag(n), m.Digest)
			}
		}
		// At most the push in flight at the kill may have committed
		// without its acknowledgement reaching us.
		tags, err := s.ListTags(ctx, repo.ID, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if extra := len(tags) - len(acked); extra < 0 || extra > round+1 {
			t.Errorf("%d tags for %d acknowledged pushes", len(tags), len(acked))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// runCrashChild starts the child, kills it once it has acknowledged
// killAfter pushes, and returns every acknowledged push number.
func runCrashChild(t *testing.T, path string, start, killAfter int) []int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDurability$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path, "COFFER_CRASH_START="+strconv.Itoa(start))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var acked []int
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		v, ok := strings.CutPrefix(line, "ack ")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("bad ack %q", line)
		}
		acked = append(acked, n)
		if len(acked) == killAfter && !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
		}
	}
	// Acks already in the pipe when the kill landed still count: each was
	// printed after its push returned.
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited after %d acks without being killed: %v", len(acked), err)
	}
	return acked
}

func crashTag(n int) string { return fmt.Sprintf("t%08d", n) }

func crashDigest(kind string, n int) string {
	return fmt.Sprintf("sha256:%064x", n*2+map[string]int{"layer": 0, "manifest": 1}[kind])
}

// crashChild pushes until killed; it never returns normally.
func crashChild(path string) {
	start, _ := strconv.Atoi(os.Getenv("COFFER_CRASH_START"))
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	repo, err := s.GetRepository(ctx, crashRepo)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child repository:", err)
		os.Exit(2)
	}
	deadline := time.Now().Add(time.Minute)
	for n := start; time.Now().Before(deadline); n++ {
		layer := metadata.Blob{Domain: repo.Domain, Digest: crashDigest("layer", n), Size: int64(n),
			ObjectKey: fmt.Sprintf("layers/aes256/%d", n), CreatedAt: time.Now()}
		if _, _, err := s.CommitBlob(ctx, repo.ID, layer); err != nil {
			fmt.Fprintln(os.Stderr, "child commit:", err)
			os.Exit(2)
		}
		m := metadata.Manifest{RepoID: repo.ID, Digest: crashDigest("manifest", n),
			MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 100,
			ObjectKey: fmt.Sprintf("manifests/%s/%d", repo.ID, n), PushedAt: time.Now()}
		_, err := s.PutManifest(ctx, metadata.PutManifest{Manifest: m,
			Refs: []metadata.Ref{{Digest: layer.Digest, Kind: metadata.RefBlob}}, Tag: crashTag(n)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child put:", err)
			os.Exit(2)
		}
		// Unbuffered: the line is in the pipe before the next push starts.
		fmt.Fprintf(os.Stdout, "ack %d\n", n)
	}
	fmt.Fprintln(os.Stderr, "child: not killed within a minute")
	os.Exit(3)
}
