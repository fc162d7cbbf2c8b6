//go:build unix

package ecrapi

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
)

// imgBenchImages is the repository size of the page benchmarks (the
// target: a page of 1,000 out of 100,000 images in at most 50 ms).
const (
	imgBenchImages = 100_000
	imgBenchPage   = 1_000
)

func imgBenchDigest(i int) string { return fmt.Sprintf("sha256:%064x", uint64(i)*0x9E3779B97F4A7C15) }

// imgBenchHandler returns a handler over a repository of imgBenchImages
// images, 90 % of them tagged (one tag each, a tenth of those two).
func imgBenchHandler(b *testing.B) *Handler {
	r := rand.New(rand.NewPCG(1, 2))
	return imgSeededHandler(b, imgBenchImages, func(int) int {
		switch {
		case r.IntN(10) == 0:
			return 0
		case r.IntN(10) == 0:
			return 2
		}
		return 1
	})
}

// imgSeededHandler returns a handler over the repository "bench/images" of
// n images, image i with tags(i) tags, bulk loaded in one transaction
// straight into the SQLite file: pushing them one by one would take
// minutes of fsyncs. Image i's digest is imgBenchDigest(i).
func imgSeededHandler(tb testing.TB, n int, tags func(i int) int) *Handler {
	tb.Helper()
	dir := tb.TempDir()
	h, reg, _ := imgHandlerIn(tb, dir)
	ctx := context.Background()
	repo, err := reg.CreateRepository(ctx, metadata.Repository{Name: "bench/images"}, false)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	insM, err := tx.PrepareContext(ctx, `INSERT INTO manifests (repo_id, digest, media_type, size, object_key, artifact_type, pushed_at, last_pulled_at, image_size)
		VALUES (?, ?, 'application/vnd.oci.image.manifest.v1+json', 1234, ?, '', ?, ?, ?)`)
	if err != nil {
		tb.Fatal(err)
	}
	insT, err := tx.PrepareContext(ctx, `INSERT INTO tags (repo_id, tag, digest, updated_at) VALUES (?, ?, ?, ?)`)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UnixMicro()
	for i := range n {
		d := imgBenchDigest(i)
		var pulled any
		if i%3 == 0 {
			pulled = now
		}
		if _, err := insM.ExecContext(ctx, repo.ID, d, "manifests/"+repo.ID+"/"+d, now, pulled, int64(1+i)<<10); err != nil {
			tb.Fatal(err)
		}
		for k := range tags(i) {
			if _, err := insT.ExecContext(ctx, repo.ID, fmt.Sprintf("t%d-%07d", k, i), d, now); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	return h
}

// BenchmarkImagesPage measures one ListImages or DescribeImages call for a
// page of 1,000 at a random position of a 100,000-image repository, through
// ServeHTTP (request decoding, the query, and the JSON answer).
func BenchmarkImagesPage(b *testing.B) {
	h := imgBenchHandler(b)
	for _, op := range []string{"ListImages", "DescribeImages"} {
		kind := tokenListImages
		if op == "DescribeImages" {
			kind = tokenDescribeImages
		}
		for _, status := range []string{"ANY", "TAGGED", "UNTAGGED"} {
			b.Run(op+"/"+status, func(b *testing.B) {
				r := rand.New(rand.NewPCG(3, 4))
				b.ReportAllocs()
				var worst time.Duration
				cpu0 := cpuTime()
				for b.Loop() {
					tok := encodeImageToken(kind, fmt.Sprintf("sha256:%064x", r.Uint64()), "")
					body := fmt.Sprintf(`{"repositoryName":"bench/images","maxResults":%d,"filter":{"tagStatus":%q},"nextToken":%q}`, imgBenchPage, status, tok)
					start := time.Now()
					w := imgCall(h, op, []byte(body))
					worst = max(worst, time.Since(start))
					if w.Code != http.StatusOK {
						b.Fatalf("%s: %d %s", op, w.Code, w.Body.String())
					}
				}
				b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
				// CPU time per page: what the page costs, independent of how
				// busy the machine is (wall time is what ns/op shows).
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			})
		}
	}
}

// cpuTime is the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestFilteredPagingWindow: when the images a filter keeps are rare, a
// page examines at most imageScanWindow images and may come back short
// with a nextToken; following the tokens still lists every image once.
func TestFilteredPagingWindow(t *testing.T) {
	t.Parallel()
	const n = 3*imageScanWindow + 500
	untagged := map[int]bool{7: true, imageScanWindow + 1: true, n - 1: true}
	h := imgSeededHandler(t, n, func(i int) int {
		if untagged[i] {
			return 0
		}
		return 1
	})
	want := map[string]bool{}
	for i := range untagged {
		want[imgBenchDigest(i)] = true
	}
	for _, op := range []string{"ListImages", "DescribeImages"} {
		got := map[string]bool{}
		token, calls, short := "", 0, 0
		for {
			calls++
			if calls > 20 {
				t.Fatalf("%s: paging does not end", op)
			}
			body := `{"repositoryName":"bench/images","maxResults":1000,"filter":{"tagStatus":"UNTAGGED"}`
			if token != "" {
				body += fmt.Sprintf(`,"nextToken":%q`, token)
			}
			w := imgCall(h, op, []byte(body+"}"))
			if w.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", op, w.Code, w.Body.String())
			}
			var out struct {
				ImageIDs     []imageID `json:"imageIds"`
				ImageDetails []struct {
					ImageDigest string   `json:"imageDigest"`
					ImageTags   []string `json:"imageTags"`
				} `json:"imageDetails"`
				NextToken string `json:"nextToken"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			for _, id := range out.ImageIDs {
				if id.ImageTag != "" || got[id.ImageDigest] {
					t.Fatalf("%s: listed %+v", op, id)
				}
				got[id.ImageDigest] = true
			}
			for _, d := range out.ImageDetails {
				if len(d.ImageTags) != 0 || got[d.ImageDigest] {
					t.Fatalf("%s: described %+v", op, d)
				}
				got[d.ImageDigest] = true
			}
			if len(out.ImageIDs)+len(out.ImageDetails) < 3 && out.NextToken != "" {
				short++
			}
			if out.NextToken == "" {
				break
			}
			token = out.NextToken
		}
		if len(got) != len(want) || short == 0 {
			t.Fatalf("%s: found %d of %d untagged images in %d calls (%d short pages)", op, len(got), len(want), calls, short)
		}
		for d := range want {
			if !got[d] {
				t.Fatalf("%s: missed %s", op, d)
			}
		}
	}
}
