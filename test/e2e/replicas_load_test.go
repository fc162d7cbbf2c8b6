//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Shape of TestReplicasConcurrentClients' load.
const (
	loadClients   = 16
	loadImages    = 3 // images per client
	loadAESRepos  = 4 // load/r0 .. load/r3; client i pushes to load/r<i%4>
	loadKMSRepo   = "load/kms"
	loadBaseSize  = 384 << 10 // one layer in every image
	loadPairSize  = 192 << 10 // one layer shared by clients 2k and 2k+1
	loadOwnSize   = 96 << 10  // one layer per image
	loadGatedSize = 1536 << 10
	loadGateAt    = 512 << 10 // a gated upload stops here until the kill
	loadChunk1    = 320 << 10 // resumed uploads: acknowledged by the victim
	loadChunk2    = 256 << 10 // resumed uploads: in flight at the kill
	// The image whose big layer stalls: the second, so that the victim
	// has acknowledged the first.
	loadStalledImage = 1
)

// Clients with a special part in the kill (all of them push through the
// victim, replica 0, which is i%3 == 0).
var (
	loadGatedClients  = []int{0, 6, 12} // remote.Write whose big layer stalls mid-PATCH
	loadResumeClients = []int{3, 9}     // chunked upload: chunk 2 stalls mid-PATCH, resumed elsewhere
	loadKMSClients    = []int{7, 15}    // push to the KMS repository (twins: same images)
)

// loadRepo is the repository client i pushes to.
func loadRepo(i int) string {
	if slices.Contains(loadKMSClients, i) {
		return loadKMSRepo
	}
	return fmt.Sprintf("load/r%d", i%loadAESRepos)
}

// loadImage is one image a client pushes, with its expected identity.
type loadImage struct {
	img    v1.Image
	digest v1.Hash
	raw    []byte // the manifest as pushed
	tags   []string
	bytes  int64 // layers + config
	// resume: the image's own layer, pushed first by a chunked upload
	// that the kill cuts and another replica finishes.
	resume []byte
}

// ack is a manifest PUT that answered 201.
type ack struct {
	client  int
	repo    string
	tag     string
	digest  v1.Hash
	replica int
	// start is before the request, end after the answer: a PUT whose end
	// precedes another's start was applied first.
	start, end time.Time
}

// loadRun is the shared state of the clients.
type loadRun struct {
	t      *testing.T
	ctx    context.Context
	reps   []*coffer
	victim int
	// killed is set just before the victim gets SIGKILL: from then on a
	// failure on the victim is the kill's doing, and clients go elsewhere.
	killed atomic.Bool
	// gateReached gets one value per stalled upload; gate releases them
	// once the victim is dead.
	gateReached chan int
	gate        chan struct{}

	// inFlight counts the operations under way through each replica.
	inFlight []atomic.Int32

	mu      sync.Mutex
	acks    []ack
	retries int // operations moved off the victim
	pulls   int
	bytes   int64
}

// try runs op through replica home, or, while op fails because the victim
// was killed (or is dead), through the next replicas.
func (l *loadRun) try(home int, what string, op func(r *coffer) error) (int, error) {
	var err error
	for k := range len(l.reps) {
		ri := (home + k) % len(l.reps)
		if ri == l.victim && l.killed.Load() {
			continue
		}
		l.inFlight[ri].Add(1)
		err = op(l.reps[ri])
		l.inFlight[ri].Add(-1)
		if err == nil {
			return ri, nil
		}
		if ri == l.victim && l.killed.Load() {
			l.mu.Lock()
			l.retries++
			l.mu.Unlock()
			continue
		}
		return ri, fmt.Errorf("%s through replica %d (%s): %w", what, ri, l.reps[ri].Addr, err)
	}
	return -1, fmt.Errorf("%s: no replica left: %w", what, err)
}

// gatedLayer is an uncompressed layer whose first read stalls at gateAt
// bytes, announces it, waits for the gate and then fails: the PATCH
// carrying it is in flight when the victim is killed. Later reads (a
// retry) are plain.
type gatedLayer struct {
	data   []byte
	digest v1.Hash
	run    *loadRun
	client int
	used   atomic.Bool
}

func (l *gatedLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *gatedLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *gatedLayer) Size() (int64, error)                 { return int64(len(l.data)), nil }
func (l *gatedLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }
func (l *gatedLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
func (l *gatedLayer) Compressed() (io.ReadCloser, error) {
	if l.used.Swap(true) {
		return io.NopCloser(bytes.NewReader(l.data)), nil
	}
	return io.NopCloser(l.run.gatedReader(l.client, l.data, loadGateAt)), nil
}

// gatedReader yields data[:at], then signals gateReached, waits for the
// gate and fails with io.ErrUnexpectedEOF.
func (l *loadRun) gatedReader(client int, data []byte, at int) io.Reader {
	return io.MultiReader(bytes.NewReader(data[:at]), readerFunc(func([]byte) (int, error) {
		l.gateReached <- client
		select {
		case <-l.gate:
		case <-l.ctx.Done():
		}
		return 0, io.ErrUnexpectedEOF
	}))
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestReplicasConcurrentClients runs three replicas on one PostgreSQL
// database and one bucket (issue #9) under 16 concurrent clients, client i
// going through replica i%3. They push overlapping images with
// go-containerregistry: a base layer in every image, a layer per pair of
// clients, one per image; every image under a tag of its own and under
// "v<n>" and "latest", which the four clients of a repository move
// concurrently through different replicas; twin clients (i, i+8) push
// identical last images to the same tag at once. Each client then pulls
// its images back through another replica, every digest verified. Two
// clients push to a repository encrypted with a customer KMS key.
//
// Replica 0 (the leader) gets SIGKILL once it has acknowledged its
// clients' first images and while five of them are in the middle of a
// layer PATCH of their second: three (remote.Write) push again through
// another replica, two (chunked uploads) resume their upload session on
// another replica from the chunk replica 0 acknowledged; every other
// operation cut by the kill moves on to another replica too.
//
// Replica 0 is restarted. Every acknowledged image pulls with verified
// digests through every replica, DescribeImages lists exactly the
// acknowledged images on every replica, and the replicas agree on every
// tag, which names the image of a PUT that no PUT of another image
// started after. Then the KMS repository's storage grant is revoked
// through replica 1 and the very next pull of that repository fails with
// KmsException on all three replicas while the other repositories (the
// same layers included) still pull; with the registry grant revoked too,
// pushes to it fail as well. The KMS repository is deleted (GRANT-05),
// and coffer fsck finds the store clean, with the expected manifests.
func TestReplicasConcurrentClients(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	start := time.Now()
	s, a, b, c := startReplicas(t, ctx)
	reps := []*coffer{a, b, c}
	t.Logf("backends and three replicas ready in %v", time.Since(start).Round(time.Millisecond))

	// The KMS repository, with a customer key, created through C.
	k, err := kmsClient(b).CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("replicas load e2e")})
	if err != nil {
		t.Fatalf("CreateKey through B: %v", err)
	}
	keyID := aws.ToString(k.KeyMetadata.KeyId)
	cr, err := ecrClient(c).CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(loadKMSRepo),
		EncryptionConfiguration: &ecrtypes.EncryptionConfiguration{EncryptionType: ecrtypes.EncryptionTypeKms, KmsKey: aws.String(keyID)}})
	if err != nil {
		t.Fatalf("CreateRepository (KMS) through C: %v", err)
	}
	kmsRepoARN := aws.ToString(cr.Repository.RepositoryArn)

	l := &loadRun{t: t, ctx: ctx, reps: reps, victim: 0,
		gateReached: make(chan int, loadClients), gate: make(chan struct{}), inFlight: make([]atomic.Int32, 3)}
	var gateOnce sync.Once
	releaseGate := func() { gateOnce.Do(func() { close(l.gate) }) }
	defer releaseGate()

	// The images, built here so that the clients share only immutable
	// layers.
	uncompressed := func(b []byte) v1.Layer {
		return static.NewLayer(b, types.OCIUncompressedLayer)
	}
	base := uncompressed(randomBytes(t, loadBaseSize))
	var pairs []v1.Layer
	for range loadClients / 2 {
		pairs = append(pairs, uncompressed(randomBytes(t, loadPairSize)))
	}
	twinLayers := map[int][]byte{} // the last image of clients k and k+8 is the same
	for k := range loadClients / 2 {
		twinLayers[k] = randomBytes(t, loadOwnSize)
	}
	build := func(label string, layers ...v1.Layer) v1.Image {
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		img, err := mutate.AppendLayers(img, layers...)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.Config.Labels = map[string]string{"org.example.load": label}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		return img
	}
	images := make([][]*loadImage, loadClients)
	for i := range loadClients {
		for n := range loadImages {
			li := &loadImage{tags: []string{fmt.Sprintf("c%d-v%d", i, n), fmt.Sprintf("v%d", n), "latest"}}
			var layers []v1.Layer
			label := fmt.Sprintf("client %d image %d", i, n)
			switch {
			case n == loadImages-1:
				label = fmt.Sprintf("twin %d", i%(loadClients/2))
				layers = append(layers, uncompressed(twinLayers[i%(loadClients/2)]))
				li.tags = append(li.tags, fmt.Sprintf("twin-%d", i%(loadClients/2)))
			case n == loadStalledImage && slices.Contains(loadGatedClients, i):
				data := randomBytes(t, loadGatedSize)
				layers = append(layers, &gatedLayer{data: data, digest: sha256Digest(data), run: l, client: i})
			case n == loadStalledImage && slices.Contains(loadResumeClients, i):
				li.resume = randomBytes(t, loadChunk1+loadChunk2)
				layers = append(layers, uncompressed(li.resume))
			default:
				layers = append(layers, uncompressed(randomBytes(t, loadOwnSize)))
			}
			pair := pairs[i/2]
			if n == loadImages-1 { // twins are identical: the pair layer of the lower one
				pair = pairs[(i%(loadClients/2))/2]
			}
			layers = append(layers, base, pair)
			li.img = build(label, layers...)
			if li.digest, err = li.img.Digest(); err != nil {
				t.Fatal(err)
			}
			if li.raw, err = li.img.RawManifest(); err != nil {
				t.Fatal(err)
			}
			m, err := li.img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			li.bytes = m.Config.Size
			for _, d := range m.Layers {
				li.bytes += d.Size
			}
			images[i] = append(images[i], li)
		}
	}

	// The clients.
	var wg sync.WaitGroup
	loadStart := time.Now()
	for i := range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.client(i, images[i])
		}()
	}

	// Kill the victim once every stalled upload is in flight through it.
	stalled := len(loadGatedClients) + len(loadResumeClients)
	waitDeadline := time.After(30 * time.Second)
	var inFlight []int
	for len(inFlight) < stalled {
		select {
		case i := <-l.gateReached:
			inFlight = append(inFlight, i)
		case <-waitDeadline:
			releaseGate()
			wg.Wait()
			t.Fatalf("only clients %v of %v+%v reached the middle of their upload within 30 s", inFlight, loadGatedClients, loadResumeClients)
		}
	}
	sort.Ints(inFlight)
	l.killed.Store(true)
	killAt := time.Since(loadStart)
	busy := l.inFlight[l.victim].Load()
	a.Kill()
	releaseGate()
	t.Logf("replica 0 (%s) killed %v into the load, with clients %v in the middle of a PATCH (%d pushes and pulls under way through it, the chunked uploads not counted)",
		a.Addr, killAt.Round(time.Millisecond), inFlight, busy)
	wg.Wait()
	loadTime := time.Since(loadStart)
	if t.Failed() {
		t.FailNow()
	}
	l.mu.Lock()
	perReplica := make([]int, len(reps))
	for _, x := range l.acks {
		perReplica[x.replica]++
	}
	t.Logf("manifest PUTs acknowledged per replica: %v", perReplica)
	t.Logf("%d clients: %d manifest PUTs acknowledged (%d MiB of image data pushed, shared layers counted per image), %d operations moved off the killed replica, %d pulls verified, in %v",
		loadClients, len(l.acks), l.bytes>>20, l.retries, l.pulls, loadTime.Round(time.Millisecond))
	l.mu.Unlock()
	for i := range loadClients {
		want := 0
		for _, li := range images[i] {
			want += len(li.tags)
		}
		if n := len(l.acksOf(i)); n != want {
			t.Errorf("client %d: %d acknowledged manifest PUTs, want %d", i, n, want)
		}
	}

	// The victim comes back and serves what the others wrote.
	t0 := time.Now()
	a.Restart()
	t.Logf("replica 0 restarted in %v", time.Since(t0).Round(time.Millisecond))
	if strings.Contains(b.logs.String(), leadingLog) || strings.Contains(c.logs.String(), leadingLog) {
		t.Logf("leadership moved off the killed replica")
	}

	// Every acknowledged image pulls with verified digests through every
	// replica; the replicas agree on every tag, and each tag names an
	// image acknowledged under it.
	t0 = time.Now()
	verified := l.verifyAll(images)
	t.Logf("final check: %d (repository, image) pairs pulled through each of the 3 replicas with digests verified, in %v",
		verified, time.Since(t0).Round(time.Millisecond))
	l.describeAll()
	if t.Failed() {
		t.FailNow()
	}

	// Revoke the KMS repository's storage grant through B: the very next
	// pull fails on every replica, with KmsException; the other
	// repositories, the same base layer included, still pull.
	kmsImg := images[loadKMSClients[0]][0]
	kmsManifest, _ := kmsImg.img.Manifest()
	baseDigest, _ := base.Digest()
	blobGet := func(r *coffer, repo string, d v1.Hash) httpResult {
		return r.do(ctx, "GET", "/v2/"+repo+"/blobs/"+d.String(), nil, nil)
	}
	manifestGet := func(r *coffer, repo string, d v1.Hash) httpResult {
		return r.do(ctx, "GET", "/v2/"+repo+"/manifests/"+d.String(), nil, map[string]string{"Accept": string(types.OCIManifestSchema1)})
	}
	kmsRefused := func(what string, res httpResult) {
		t.Helper()
		if res.Status != http.StatusForbidden || !slices.Contains(ociErrorCodes(res.Body), "DENIED") || !bytes.Contains(res.Body, []byte("KmsException")) {
			t.Errorf("%s: %s; want 403 DENIED with KmsException", what, res)
		}
	}
	for ri, r := range reps { // warm every replica's caches
		for _, d := range []v1.Hash{baseDigest, kmsManifest.Layers[0].Digest, kmsManifest.Config.Digest} {
			if res := blobGet(r, loadKMSRepo, d); res.Status != http.StatusOK || sha256Digest(res.Body) != d {
				t.Errorf("KMS blob %s through replica %d before the revocation: %s", d, ri, res)
			}
		}
		if res := manifestGet(r, loadKMSRepo, kmsImg.digest); res.Status != http.StatusOK || !bytes.Equal(res.Body, kmsImg.raw) {
			t.Errorf("KMS manifest through replica %d before the revocation: %s", ri, res)
		}
	}
	grants := l.repoGrants(keyID, kmsRepoARN)
	if len(grants) != 2 {
		t.Fatalf("ListGrants: %d grants constrained to %s, want 2: %+v", len(grants), kmsRepoARN, grants)
	}
	var storageGrant, registryGrant string
	for _, g := range grants {
		if slices.Contains(g.Operations, kmstypes.GrantOperationDecrypt) {
			storageGrant = aws.ToString(g.GrantId)
		} else {
			registryGrant = aws.ToString(g.GrantId)
		}
	}
	if storageGrant == "" || registryGrant == "" {
		t.Fatalf("grants of %s: want one with Decrypt and one without: %+v", kmsRepoARN, grants)
	}
	if _, err := kmsClient(b).RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: aws.String(keyID), GrantId: aws.String(storageGrant)}); err != nil {
		t.Fatalf("RevokeGrant (storage) through B: %v", err)
	}
	for _, ri := range []int{2, 0, 1} { // the revoking replica last
		r := reps[ri]
		kmsRefused(fmt.Sprintf("KMS layer through replica %d after the revocation through B", ri), blobGet(r, loadKMSRepo, kmsManifest.Layers[0].Digest))
		kmsRefused(fmt.Sprintf("KMS base layer through replica %d after the revocation through B", ri), blobGet(r, loadKMSRepo, baseDigest))
		kmsRefused(fmt.Sprintf("KMS manifest through replica %d after the revocation through B", ri), manifestGet(r, loadKMSRepo, kmsImg.digest))
		if _, err := remote.Image(r.digestRef(t, loadKMSRepo, kmsImg.digest), r.opts(ctx)...); err == nil {
			t.Errorf("remote.Image of the KMS repository through replica %d after the revocation: no error", ri)
		} else if status, _ := registryErr(err); status != http.StatusForbidden || !strings.Contains(err.Error(), "KmsException") {
			t.Errorf("remote.Image of the KMS repository through replica %d after the revocation: %v; want 403 KmsException", ri, err)
		}
		if res := blobGet(r, "load/r0", baseDigest); res.Status != http.StatusOK || sha256Digest(res.Body) != baseDigest {
			t.Errorf("base layer of load/r0 through replica %d after the KMS revocation: %s", ri, res)
		}
		li := images[ri][0] // an AES256 image (client ri pushes to load/r<ri>)
		if err := pullVerify(ctx, r, loadRepo(ri), li); err != nil {
			t.Errorf("pull of %s through replica %d after the KMS revocation: %v", loadRepo(ri), ri, err)
		}
	}
	// With the registry grant revoked too (through C), a push fails on
	// every replica.
	if _, err := kmsClient(c).RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: aws.String(keyID), GrantId: aws.String(registryGrant)}); err != nil {
		t.Fatalf("RevokeGrant (registry) through C: %v", err)
	}
	for ri, r := range reps {
		img := build(fmt.Sprintf("after revocation %d", ri), uncompressed(randomBytes(t, 4096)))
		err := remote.Write(r.ref(t, loadKMSRepo+":revoked"), img, r.opts(ctx)...)
		if status, _ := registryErr(err); err == nil || status != http.StatusForbidden || !strings.Contains(err.Error(), "KmsException") {
			t.Errorf("push to the KMS repository through replica %d with both grants revoked: %v; want 403 KmsException", ri, err)
		}
	}

	// The supported way out (GRANT-05): delete the repository. Then fsck.
	if _, err := ecrClient(a).DeleteRepository(ctx, &ecr.DeleteRepositoryInput{RepositoryName: aws.String(loadKMSRepo), Force: true}); err != nil {
		t.Fatalf("DeleteRepository %s through A: %v", loadKMSRepo, err)
	}
	for ri, r := range reps {
		if res := manifestGet(r, loadKMSRepo, kmsImg.digest); res.Status != http.StatusNotFound {
			t.Errorf("KMS manifest through replica %d after DeleteRepository through A: %s; want 404", ri, res)
		}
	}
	manifests := map[string]bool{}
	l.mu.Lock()
	for _, x := range l.acks {
		if x.repo != loadKMSRepo {
			manifests[x.repo+"@"+x.digest.String()] = true
		}
	}
	l.mu.Unlock()
	t0 = time.Now()
	s.coffer = b
	out, code := s.fsck(t, ctx)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("read %d manifests", len(manifests))) || !strings.Contains(out, ": 0 problems") {
		t.Errorf("fsck = %d, want 0 and %d manifests with 0 problems\n%s", code, len(manifests), out)
	}
	t.Logf("fsck in %v: %s", time.Since(t0).Round(time.Millisecond), lastLine(out))
	t.Logf("TestReplicasConcurrentClients took %v", time.Since(start).Round(time.Millisecond))
}

// client is client i: it pushes its images through replica i%3 (moving
// off the victim once it is killed), then pulls each of them back through
// another replica.
func (l *loadRun) client(i int, imgs []*loadImage) {
	t, ctx := l.t, l.ctx
	home := i % len(l.reps)
	repo := loadRepo(i)
	for _, li := range imgs {
		if li.resume != nil {
			if err := l.resumedUpload(i, repo, li.resume); err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
		}
		for j, tag := range li.tags {
			t0 := time.Now()
			ri, err := l.try(home, fmt.Sprintf("client %d: push %s:%s", i, repo, tag), func(r *coffer) error {
				if j == 0 {
					return remote.Write(r.ref(t, repo+":"+tag), li.img, r.opts(ctx)...)
				}
				return remote.Tag(r.ref(t, repo+":"+tag).(name.Tag), li.img, r.opts(ctx)...)
			})
			if err != nil {
				t.Errorf("%v", err)
				return
			}
			l.mu.Lock()
			l.acks = append(l.acks, ack{client: i, repo: repo, tag: tag, digest: li.digest, replica: ri, start: t0, end: time.Now()})
			if j == 0 {
				l.bytes += li.bytes
			}
			l.mu.Unlock()
		}
	}
	for n, li := range imgs {
		// Another replica than home; when that one is the dead victim,
		// the third one.
		via := (home + 1 + n%2) % len(l.reps)
		if via == l.victim && l.killed.Load() {
			via = 3 - home - l.victim
		}
		if _, err := l.try(via, fmt.Sprintf("client %d: pull %s@%s", i, repo, li.digest), func(r *coffer) error {
			return pullVerify(ctx, r, repo, li)
		}); err != nil {
			t.Errorf("%v", err)
			return
		}
		l.mu.Lock()
		l.pulls++
		l.mu.Unlock()
	}
}

// resumedUpload pushes blob with a chunked upload through the victim: the
// first chunk is acknowledged, the second is in flight when the victim is
// killed; the session is then resumed through another replica, which
// reports only the first chunk, takes the second and completes the blob.
func (l *loadRun) resumedUpload(i int, repo string, blob []byte) error {
	ctx := l.ctx
	a := l.reps[l.victim]
	chunk1, chunk2 := blob[:loadChunk1], blob[loadChunk1:]
	digest := sha256Digest(blob)
	res := a.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if res.Status != http.StatusAccepted {
		return fmt.Errorf("upload POST through the victim: %s", res)
	}
	loc, err := locationPath(res)
	if err != nil {
		return err
	}
	res = a.do(ctx, "PATCH", loc, bytes.NewReader(chunk1), chunkHeaders(0, len(chunk1)))
	if res.Status != http.StatusAccepted || res.Header.Get("Range") != fmt.Sprintf("0-%d", len(chunk1)-1) {
		return fmt.Errorf("first chunk through the victim: %s", res)
	}
	if loc, err = locationPath(res); err != nil {
		return err
	}
	res = a.do(ctx, "PATCH", loc, l.gatedReader(i, chunk2, len(chunk2)/2), chunkHeaders(len(chunk1), len(chunk2)))
	if res.Status != 0 || !l.killed.Load() {
		return fmt.Errorf("second chunk through the victim, cut by SIGKILL: %s; want no answer", res)
	}
	other := l.reps[(l.victim+1+slices.Index(loadResumeClients, i)%2)%len(l.reps)]
	res = other.do(ctx, "GET", loc, nil, nil)
	if res.Status != http.StatusNoContent || res.Header.Get("Range") != fmt.Sprintf("0-%d", len(chunk1)-1) {
		return fmt.Errorf("upload status through %s after the kill: %s; want 204 with the first chunk only", other.Addr, res)
	}
	res = other.do(ctx, "PATCH", loc, bytes.NewReader(chunk2), chunkHeaders(len(chunk1), len(chunk2)))
	if res.Status != http.StatusAccepted {
		return fmt.Errorf("second chunk through %s: %s", other.Addr, res)
	}
	if loc, err = locationPath(res); err != nil {
		return err
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	res = other.do(ctx, "PUT", loc+sep+"digest="+digest.String(), nil, map[string]string{"Content-Length": "0"})
	if res.Status != http.StatusCreated {
		return fmt.Errorf("upload PUT through %s: %s", other.Addr, res)
	}
	l.mu.Lock()
	l.retries++
	l.mu.Unlock()
	return nil
}

// locationPath is uploadPath without t.Fatal, for the clients' goroutines.
func locationPath(r httpResult) (string, error) {
	loc := r.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%s: no Location", r)
	}
	if i := strings.Index(loc, "/v2/"); i >= 0 {
		return loc[i:], nil
	}
	return "", fmt.Errorf("%s: odd Location", r)
}

// pullVerify pulls li by digest through r and checks the manifest bytes,
// the config and every layer against their digests (and diff IDs and
// sizes).
func pullVerify(ctx context.Context, r *coffer, repo string, li *loadImage) error {
	ref, err := name.NewDigest(r.Addr+"/"+repo+"@"+li.digest.String(), name.Insecure, name.StrictValidation)
	if err != nil {
		return err
	}
	img, err := remote.Image(ref, r.opts(ctx)...)
	if err != nil {
		return err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	if !bytes.Equal(raw, li.raw) {
		return fmt.Errorf("manifest %s differs from the one pushed", li.digest)
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("config of %s: %w", li.digest, err)
	}
	if d := sha256Digest(cfg); d != m.Config.Digest || int64(len(cfg)) != m.Config.Size {
		return fmt.Errorf("config of %s: %s, %d bytes; want %s, %d bytes", li.digest, d, len(cfg), m.Config.Digest, m.Config.Size)
	}
	for _, desc := range m.Layers {
		layer, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			return err
		}
		rc, err := layer.Compressed()
		if err != nil {
			return fmt.Errorf("layer %s of %s: %w", desc.Digest, li.digest, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s of %s: %w", desc.Digest, li.digest, err)
		}
		if d := (v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}); d != desc.Digest || n != desc.Size {
			return fmt.Errorf("layer %s of %s: read %s, %d bytes; want %d bytes", desc.Digest, li.digest, d, n, desc.Size)
		}
	}
	return nil
}

func (l *loadRun) acksOf(client int) []ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []ack
	for _, x := range l.acks {
		if x.client == client {
			out = append(out, x)
		}
	}
	return out
}

// verifyAll pulls every acknowledged image through every replica and
// checks every tag on every replica; it returns the pairs verified.
func (l *loadRun) verifyAll(images [][]*loadImage) int {
	t, ctx := l.t, l.ctx
	l.mu.Lock()
	acks := slices.Clone(l.acks)
	l.mu.Unlock()
	byDigest := map[string]*loadImage{}
	for _, imgs := range images {
		for _, li := range imgs {
			byDigest[li.digest.String()] = li
		}
	}
	type pair struct{ repo, digest string }
	pairs := map[pair]bool{}
	tagged := map[string]map[string]bool{} // repo:tag -> acknowledged digests
	puts := map[string][]ack{}             // repo:tag -> its acknowledged PUTs
	for _, x := range acks {
		pairs[pair{x.repo, x.digest.String()}] = true
		rt := x.repo + ":" + x.tag
		if tagged[rt] == nil {
			tagged[rt] = map[string]bool{}
		}
		tagged[rt][x.digest.String()] = true
		puts[rt] = append(puts[rt], x)
	}
	// The tag's final image is the last PUT's: one acknowledged under it
	// by a PUT that no PUT of another image started after.
	final := map[string]map[string]bool{}
	for rt, xs := range puts {
		final[rt] = map[string]bool{}
		for _, x := range xs {
			if !slices.ContainsFunc(xs, func(y ack) bool { return y.digest != x.digest && x.end.Before(y.start) }) {
				final[rt][x.digest.String()] = true
			}
		}
	}
	var jobs []func()
	for p := range pairs {
		for ri, r := range l.reps {
			jobs = append(jobs, func() {
				if err := pullVerify(ctx, r, p.repo, byDigest[p.digest]); err != nil {
					t.Errorf("final pull of %s@%s through replica %d: %v", p.repo, p.digest, ri, err)
				}
			})
		}
	}
	for rt, want := range final {
		repo, tag, _ := strings.Cut(rt, ":")
		jobs = append(jobs, func() {
			var seen []string
			for ri, r := range l.reps {
				res := r.do(ctx, "HEAD", "/v2/"+repo+"/manifests/"+tag, nil, map[string]string{"Accept": string(types.OCIManifestSchema1)})
				d := res.Header.Get("Docker-Content-Digest")
				if res.Status != http.StatusOK || !want[d] {
					t.Errorf("tag %s through replica %d: %s; want one of %v (of the %d digests acknowledged under it, those no later PUT of another image followed)",
						rt, ri, res, slices.Sorted(maps.Keys(want)), len(tagged[rt]))
				}
				seen = append(seen, d)
			}
			if len(slices.Compact(slices.Clone(seen))) != 1 {
				t.Errorf("tag %s: the replicas disagree: %v", rt, seen)
			}
		})
	}
	work := make(chan func())
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				f()
			}
		}()
	}
	for _, f := range jobs {
		work <- f
	}
	close(work)
	wg.Wait()
	contested, open := 0, 0
	for rt, want := range tagged {
		if len(want) > 1 {
			contested++
		}
		if len(final[rt]) > 1 {
			open++
		}
	}
	t.Logf("final check: %d tags, %d of them written with different images by racing clients, %d with PUTs of different images overlapping at the end",
		len(tagged), contested, open)
	return len(pairs)
}

// describeAll checks that every replica's ECR DescribeImages lists, for
// every repository, exactly the images acknowledged in it.
func (l *loadRun) describeAll() {
	t, ctx := l.t, l.ctx
	want := map[string][]string{}
	l.mu.Lock()
	for _, x := range l.acks {
		if !slices.Contains(want[x.repo], x.digest.String()) {
			want[x.repo] = append(want[x.repo], x.digest.String())
		}
	}
	l.mu.Unlock()
	for repo, digests := range want {
		slices.Sort(digests)
		for ri, r := range l.reps {
			var got []string
			p := ecr.NewDescribeImagesPaginator(ecrClient(r), &ecr.DescribeImagesInput{RepositoryName: aws.String(repo)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Errorf("DescribeImages %s through replica %d: %v", repo, ri, err)
					break
				}
				for _, d := range page.ImageDetails {
					got = append(got, aws.ToString(d.ImageDigest))
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, digests) {
				t.Errorf("DescribeImages %s through replica %d: %d images %v; want the %d acknowledged %v", repo, ri, len(got), got, len(digests), digests)
			}
		}
	}
}

// repoGrants lists the grants on keyID constrained to repoARN.
func (l *loadRun) repoGrants(keyID, repoARN string) []kmstypes.GrantListEntry {
	l.t.Helper()
	out, err := kmsClient(l.reps[1]).ListGrants(l.ctx, &awskms.ListGrantsInput{KeyId: aws.String(keyID)})
	if err != nil {
		l.t.Fatalf("ListGrants: %v", err)
	}
	var gs []kmstypes.GrantListEntry
	for _, g := range out.Grants {
		if g.Constraints != nil && g.Constraints.EncryptionContextSubset["aws:ecr:arn"] == repoARN {
			gs = append(gs, g)
		}
	}
	return gs
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
