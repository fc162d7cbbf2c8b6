package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// An index file (state/index/<unique>.idx) indexes one sealed log file.
// Little endian throughout:
//
//	magic    "COFIDX\x00\x01"
//	hdrLen   uint32, then the header (JSON, idxHeader)
//	blocks   Blocks × (offset uint64, length uint32): the gzip members
//	         that hold the records, in the log file (Records "log") or in
//	         the data section of this file ("self")
//	records  Count × (t int64, block uint32, offset uint32, length uint32,
//	         eventID offset uint32), sorted by (t, eventID): a record's
//	         ordinal is its place here; offset and length are within the
//	         member's inflated bytes
//	eventIDs EIDBytes bytes, the eventIDs in ordinal order
//	hashes   Count × (eventIDHash(eventID) uint64, ordinal uint32), sorted
//	keys     Keys × (attribute code uint32, attrHash(value) uint64,
//	         first posting uint32, postings uint32), sorted by (code, hash)
//	postings Postings × ordinal uint32, each key's ascending
//	data     DataBytes (Records "self"): gzip members
//	crc      CRC-32C of everything before it, uint32
//
// A file that fails its checks is rebuilt from its log file.
const (
	idxMagic       = "COFIDX\x00\x01"
	idxSuffix      = ".idx"
	idxFormat      = 1
	blockTarget    = 64 << 10 // inflated bytes of records per gzip member
	keyCacheBudget = 32 << 20 // bytes of posting keys kept in memory
	blockCacheSize = 64       // inflated members kept in memory
)

type idxHeader struct {
	Format    int    `json:"format"`
	Object    string `json:"object"`
	Records   string `json:"records"` // "log" or "self"
	Count     int    `json:"count"`
	MinT      int64  `json:"minT"`
	MaxT      int64  `json:"maxT"`
	Blocks    int    `json:"blocks"`
	EIDBytes  int    `json:"eidBytes"`
	Keys      int    `json:"keys"`
	Postings  int    `json:"postings"`
	DataBytes int64  `json:"dataBytes"`
}

const (
	blockEntry  = 12
	recordEntry = 24
	hashEntry   = 12
	keyEntry    = 20
)

// logBlock is a gzip member: its offset and length in its file.
type logBlock struct {
	off uint64
	n   uint32
}

// recLoc is where a record lies: its member, and its offset and length in
// the member's inflated bytes.
type recLoc struct{ block, off, n uint32 }

// logLayout is where buildLogFileBlocks put each record.
type logLayout struct {
	blocks []logBlock
	locs   []recLoc // per record, in order
}

// buildLogFileBlocks is buildLogFile's content, {"Records":[...]}, as a
// series of gzip members of about blockTarget inflated bytes each (a
// gzip file may hold several members: gzip, zcat and every gzip library
// read them as one stream), and where each record lies, so that a
// lookup inflates one member to read a record.
func buildLogFileBlocks(recs [][]byte) ([]byte, *logLayout, error) {
	var lb logFileBuilder
	return lb.build(recs)
}

// logFileBuilder builds log files (buildLogFileBlocks), keeping its
// compressor and buffers from one to the next: the sealer builds one per
// segment.
type logFileBuilder struct {
	zw    *gzip.Writer
	out   bytes.Buffer
	block []byte // the member being filled, before compression
}

// build is buildLogFileBlocks; the log file it returns is valid until the
// next build.
func (lb *logFileBuilder) build(recs [][]byte) ([]byte, *logLayout, error) {
	lb.out.Reset()
	n := 0
	for _, r := range recs {
		n += len(r)
	}
	lb.out.Grow(n / 8) // records compress 12:1 to 18:1
	if lb.block == nil {
		lb.block = make([]byte, 0, 2*blockTarget)
	}
	if lb.zw == nil {
		zw, err := gzip.NewWriterLevel(&lb.out, gzip.BestSpeed)
		if err != nil {
			return nil, nil, err
		}
		lb.zw = zw
	}
	lay := &logLayout{locs: make([]recLoc, len(recs))}
	// Each member is compressed in one write, when it is full.
	end := func() error {
		start := lb.out.Len()
		lb.zw.Reset(&lb.out)
		if _, err := lb.zw.Write(lb.block); err != nil {
			return err
		}
		if err := lb.zw.Close(); err != nil {
			return err
		}
		lay.blocks = append(lay.blocks, logBlock{off: uint64(start), n: uint32(lb.out.Len() - start)})
		lb.block = lb.block[:0]
		return nil
	}
	lb.block = append(lb.block[:0], `{"Records":[`...)
	for i, r := range recs {
		if i > 0 {
			lb.block = append(lb.block, ',')
		}
		lay.locs[i] = recLoc{block: uint32(len(lay.blocks)), off: uint32(len(lb.block)), n: uint32(len(r))}
		lb.block = append(lb.block, r...)
		if len(lb.block) >= blockTarget && i < len(recs)-1 {
			if err := end(); err != nil {
				return nil, nil, err
			}
		}
	}
	lb.block = append(lb.block, `]}`...)
	if err := end(); err != nil {
		return nil, nil, err
	}
	if cap(lb.block) > 4*blockTarget {
		lb.block = nil // a huge record's member: not worth keeping
	}
	data := lb.out.Bytes()
	if lb.out.Cap() > maxKeptBuffer {
		lb.out = bytes.Buffer{}
	}
	return data, lay, nil
}

type postKey struct {
	code uint8
	h    uint64
}

// buildIndexFile returns the index file of log file obj, whose records
// are recs (metas: their metadata, nil to parse them) at layout in the
// log file (nil: the records go into the index file).
func buildIndexFile(obj string, recs [][]byte, metas []memRecord, layout *logLayout) ([]byte, error) {
	if metas == nil {
		metas = make([]memRecord, len(recs))
		for i, r := range recs {
			if m, err := metaOfJSON(r); err == nil { // a record that does not parse is not indexed
				metas[i] = m.record(r)
			}
		}
	}
	var self []byte
	hdr := idxHeader{Format: idxFormat, Object: obj, Records: "log"}
	if layout == nil {
		var err error
		if self, layout, err = buildLogFileBlocks(recs); err != nil {
			return nil, err
		}
		hdr.Records, hdr.DataBytes = "self", int64(len(self))
	}
	if len(layout.locs) != len(recs) || len(metas) != len(recs) {
		return nil, errors.New("index: records and layout differ")
	}
	ords := make([]int, 0, len(recs))
	for i := range recs {
		if metas[i].eid != "" {
			ords = append(ords, i)
		}
	}
	slices.SortStableFunc(ords, func(a, b int) int {
		ma, mb := &metas[a], &metas[b]
		switch {
		case ma.t != mb.t:
			if ma.t < mb.t {
				return -1
			}
			return 1
		case ma.eid < mb.eid:
			return -1
		case ma.eid > mb.eid:
			return 1
		}
		return 0
	})
	hdr.Count, hdr.Blocks = len(ords), len(layout.blocks)
	if len(ords) > 0 {
		hdr.MinT, hdr.MaxT = metas[ords[0]].t, metas[ords[len(ords)-1]].t
	}
	le := binary.LittleEndian
	recTab := make([]byte, 0, recordEntry*len(ords))
	eids := make([]byte, 0, 36*len(ords)) // UUIDs, usually
	hashes := make([]byte, 0, hashEntry*len(ords))
	hashOrd := make([]struct {
		h   uint64
		ord uint32
	}, len(ords))
	keyOf := map[memKey]int32{}
	var keyVals []memKey
	var lists [][]uint32
	// The key of each place in the last record's attributes (its index in
	// lists, plus one): records in a row mostly share their values, and a
	// comparison costs less than a map lookup.
	var last []int32
	for ord, i := range ords {
		m, loc := &metas[i], layout.locs[i]
		recTab = le.AppendUint64(recTab, uint64(m.t))
		recTab = le.AppendUint32(recTab, loc.block)
		recTab = le.AppendUint32(recTab, loc.off)
		recTab = le.AppendUint32(recTab, loc.n)
		recTab = le.AppendUint32(recTab, uint32(len(eids)))
		eids = append(eids, m.eid...)
		hashOrd[ord].h, hashOrd[ord].ord = eventIDHash(m.eid), uint32(ord)
		for p, k := range m.attrs {
			if p == len(last) {
				last = append(last, 0)
			}
			c := &last[p]
			j := *c - 1
			if j < 0 || keyVals[j] != k {
				var ok bool
				if j, ok = keyOf[k]; !ok {
					j = int32(len(lists))
					keyOf[k] = j
					keyVals = append(keyVals, k)
					lists = append(lists, nil)
				}
				*c = j + 1
			}
			if l := lists[j]; len(l) == 0 || l[len(l)-1] != uint32(ord) {
				lists[j] = append(l, uint32(ord))
			}
		}
	}
	hdr.EIDBytes = len(eids)
	slices.SortFunc(hashOrd, func(a, b struct {
		h   uint64
		ord uint32
	}) int {
		if a.h != b.h {
			if a.h < b.h {
				return -1
			}
			return 1
		}
		return int(a.ord) - int(b.ord)
	})
	for _, e := range hashOrd {
		hashes = le.AppendUint64(hashes, e.h)
		hashes = le.AppendUint32(hashes, e.ord)
	}
	byHash := make(map[postKey][]uint32, len(lists))
	for j, k := range keyVals {
		l := lists[j]
		pk := postKey{k.code, uint64(attrHash(k.v))}
		if prev, ok := byHash[pk]; ok { // two values of one hash
			l = append(slices.Clone(prev), l...)
			slices.Sort(l)
			l = slices.Compact(l)
		}
		byHash[pk] = l
	}
	keys := make([]postKey, 0, len(byHash))
	for k := range byHash {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b postKey) int {
		if a.code != b.code {
			return int(a.code) - int(b.code)
		}
		if a.h < b.h {
			return -1
		}
		if a.h > b.h {
			return 1
		}
		return 0
	})
	keyTab := make([]byte, 0, keyEntry*len(keys))
	var posts []byte
	for _, k := range keys {
		l := byHash[k]
		keyTab = le.AppendUint32(keyTab, uint32(k.code))
		keyTab = le.AppendUint64(keyTab, k.h)
		keyTab = le.AppendUint32(keyTab, uint32(len(posts)/4))
		keyTab = le.AppendUint32(keyTab, uint32(len(l)))
		for _, o := range l {
			posts = le.AppendUint32(posts, o)
		}
	}
	hdr.Keys, hdr.Postings = len(keys), len(posts)/4
	hj, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 8+4+len(hj)+blockEntry*len(layout.blocks)+len(recTab)+len(eids)+len(hashes)+len(keyTab)+len(posts)+len(self)+4)
	out = append(out, idxMagic...)
	out = le.AppendUint32(out, uint32(len(hj)))
	out = append(out, hj...)
	for _, b := range layout.blocks {
		out = le.AppendUint64(out, b.off)
		out = le.AppendUint32(out, b.n)
	}
	out = append(out, recTab...)
	out = append(out, eids...)
	out = append(out, hashes...)
	out = append(out, keyTab...)
	out = append(out, posts...)
	out = append(out, self...)
	return le.AppendUint32(out, crc32.Checksum(out, castagnoli)), nil
}

// sealedFile is an index file: its header and where its sections are.
type sealedFile struct {
	unique, path, object string
	hdr                  idxHeader
	blocks               []logBlock
	recsOff, eidsOff     int64
	hashOff, keysOff     int64
	postOff, dataOff     int64
}

// openSealedFile reads and checks the index file at p, of log file obj.
func openSealedFile(p, obj string) (*sealedFile, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return parseSealedFile(p, obj, data)
}

var errBadIndexFile = errors.New("index file damaged")

func parseSealedFile(p, obj string, data []byte) (*sealedFile, error) {
	le := binary.LittleEndian
	if len(data) < 16 || string(data[:8]) != idxMagic {
		return nil, errBadIndexFile
	}
	body := data[:len(data)-4]
	if crc32.Checksum(body, castagnoli) != le.Uint32(data[len(data)-4:]) {
		return nil, fmt.Errorf("%w: checksum", errBadIndexFile)
	}
	hl := int64(le.Uint32(data[8:]))
	if 12+hl > int64(len(body)) {
		return nil, errBadIndexFile
	}
	f := &sealedFile{path: p, object: obj}
	if err := json.Unmarshal(data[12:12+hl], &f.hdr); err != nil || f.hdr.Format != idxFormat {
		return nil, fmt.Errorf("%w: header", errBadIndexFile)
	}
	h := &f.hdr
	if h.Object != obj {
		return nil, fmt.Errorf("%w: of %s, not of %s", errBadIndexFile, h.Object, obj)
	}
	if h.Count < 0 || h.Blocks < 0 || h.EIDBytes < 0 || h.Keys < 0 || h.Postings < 0 || h.DataBytes < 0 ||
		(h.Records != "log" && h.Records != "self") || (h.Records == "log") != (h.DataBytes == 0) {
		return nil, fmt.Errorf("%w: header", errBadIndexFile)
	}
	blocksOff := 12 + hl
	f.recsOff = blocksOff + blockEntry*int64(h.Blocks)
	f.eidsOff = f.recsOff + recordEntry*int64(h.Count)
	f.hashOff = f.eidsOff + int64(h.EIDBytes)
	f.keysOff = f.hashOff + hashEntry*int64(h.Count)
	f.postOff = f.keysOff + keyEntry*int64(h.Keys)
	f.dataOff = f.postOff + 4*int64(h.Postings)
	if f.dataOff+h.DataBytes != int64(len(body)) {
		return nil, fmt.Errorf("%w: size", errBadIndexFile)
	}
	f.blocks = make([]logBlock, h.Blocks)
	for i := range f.blocks {
		b := data[blocksOff+blockEntry*int64(i):]
		f.blocks[i] = logBlock{off: le.Uint64(b), n: le.Uint32(b[8:])}
	}
	f.unique = filepath.Base(p)[:len(filepath.Base(p))-len(idxSuffix)]
	return f, nil
}

// idxKey is a posting key of a sealed file.
type idxKey struct {
	postKey
	first, n uint32
}

// keyCache keeps the small tables of recently used sealed files (the
// posting keys; the eventID hashes once an EventId lookup needed them)
// within a budget of bytes, so that a lookup of a value a file does not
// hold does not open the file.
type keyCache struct {
	mu     sync.Mutex
	budget int
	size   int
	tick   uint64
	m      map[*sealedFile]*cachedTables
}

type cachedTables struct {
	keys     []idxKey
	hashes   []uint64 // nil until needed
	hashOrds []uint32
	used     uint64
}

func (e *cachedTables) bytes() int { return 32*len(e.keys) + 12*len(e.hashes) }

// get returns f's tables, with the eventID hashes if hashes; open opens f
// when they have to be read.
func (c *keyCache) get(f *sealedFile, open func() (io.ReaderAt, error), hashes bool) (*cachedTables, error) {
	c.mu.Lock()
	c.tick++
	e := c.m[f]
	if e != nil {
		e.used = c.tick
		if !hashes || e.hashes != nil {
			c.mu.Unlock()
			return e, nil
		}
	}
	c.mu.Unlock()
	r, err := open()
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	n := &cachedTables{}
	if e != nil {
		n.keys = e.keys
	} else {
		raw := make([]byte, keyEntry*f.hdr.Keys)
		if _, err := r.ReadAt(raw, f.keysOff); err != nil {
			return nil, err
		}
		n.keys = make([]idxKey, f.hdr.Keys)
		for i := range n.keys {
			b := raw[keyEntry*i:]
			n.keys[i] = idxKey{postKey{uint8(le.Uint32(b)), le.Uint64(b[4:])}, le.Uint32(b[12:]), le.Uint32(b[16:])}
			if uint64(n.keys[i].first)+uint64(n.keys[i].n) > uint64(f.hdr.Postings) {
				return nil, errBadIndexFile
			}
		}
	}
	if hashes {
		raw := make([]byte, hashEntry*f.hdr.Count)
		if _, err := r.ReadAt(raw, f.hashOff); err != nil {
			return nil, err
		}
		n.hashes, n.hashOrds = make([]uint64, f.hdr.Count), make([]uint32, f.hdr.Count)
		for i := range n.hashes {
			n.hashes[i], n.hashOrds[i] = le.Uint64(raw[hashEntry*i:]), le.Uint32(raw[hashEntry*i+8:])
			if int(n.hashOrds[i]) >= f.hdr.Count {
				return nil, errBadIndexFile
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[*sealedFile]*cachedTables{}
	}
	if old := c.m[f]; old != nil {
		c.size -= old.bytes()
	}
	n.used = c.tick
	c.m[f] = n
	c.size += n.bytes()
	if c.size > c.budget {
		// Drop the least recently used down to 3/4 of the budget.
		type fu struct {
			f    *sealedFile
			used uint64
		}
		var all []fu
		for g, e := range c.m {
			all = append(all, fu{g, e.used})
		}
		slices.SortFunc(all, func(a, b fu) int { return int(int64(a.used - b.used)) })
		for _, e := range all {
			if c.size <= c.budget*3/4 {
				break
			}
			if e.f != f {
				c.size -= c.m[e.f].bytes()
				delete(c.m, e.f)
			}
		}
	}
	return n, nil
}

func (c *keyCache) drop(f *sealedFile) {
	c.mu.Lock()
	if e := c.m[f]; e != nil {
		c.size -= e.bytes()
		delete(c.m, f)
	}
	c.mu.Unlock()
}

// blockCache keeps recently inflated members.
type blockCache struct {
	mu   sync.Mutex
	next int
	ents [blockCacheSize]struct {
		f    *sealedFile
		b    uint32
		data []byte
	}
}

func (c *blockCache) get(f *sealedFile, b uint32) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.ents {
		if c.ents[i].f == f && c.ents[i].b == b && c.ents[i].data != nil {
			return c.ents[i].data
		}
	}
	return nil
}

func (c *blockCache) put(f *sealedFile, b uint32, data []byte) {
	c.mu.Lock()
	e := &c.ents[c.next]
	e.f, e.b, e.data = f, b, data
	c.next = (c.next + 1) % len(c.ents)
	c.mu.Unlock()
}

// fileReader reads one sealed file during one query.
type fileReader struct {
	x      *index
	f      *sealedFile
	idx    *os.File // opened on first use
	log    *os.File // opened on first use
	logDir string
	err    error
}

func (r *fileReader) open() (io.ReaderAt, error) {
	if r.idx == nil {
		f, err := os.Open(r.f.path)
		if err != nil {
			return nil, err
		}
		r.idx = f
	}
	return r.idx, nil
}

func (r *fileReader) close() {
	if r.idx != nil {
		r.idx.Close()
	}
	if r.log != nil {
		r.log.Close()
	}
}

func (r *fileReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// entry reads the record table's entry of ord.
func (r *fileReader) entry(ord int) (t int64, loc recLoc, eid string) {
	if r.err != nil || ord < 0 || ord >= r.f.hdr.Count {
		r.fail(errBadIndexFile)
		return 0, loc, ""
	}
	var b [2 * recordEntry]byte
	n := recordEntry
	if ord+1 < r.f.hdr.Count {
		n = 2 * recordEntry
	}
	if _, err := r.idx.ReadAt(b[:n], r.f.recsOff+recordEntry*int64(ord)); err != nil {
		r.fail(err)
		return 0, loc, ""
	}
	le := binary.LittleEndian
	t = int64(le.Uint64(b[:]))
	loc = recLoc{le.Uint32(b[8:]), le.Uint32(b[12:]), le.Uint32(b[16:])}
	from, to := int64(le.Uint32(b[20:])), int64(r.f.hdr.EIDBytes)
	if n == 2*recordEntry {
		to = int64(le.Uint32(b[recordEntry+20:]))
	}
	if from > to || to > int64(r.f.hdr.EIDBytes) || to-from > 1<<16 {
		r.fail(errBadIndexFile)
		return 0, loc, ""
	}
	e := make([]byte, to-from)
	if _, err := r.idx.ReadAt(e, r.f.eidsOff+from); err != nil {
		r.fail(err)
		return 0, loc, ""
	}
	return t, loc, string(e)
}

// t reads the time of ord.
func (r *fileReader) t(ord int) int64 {
	var b [8]byte
	if _, err := r.idx.ReadAt(b[:], r.f.recsOff+recordEntry*int64(ord)); err != nil {
		r.fail(err)
	}
	return int64(binary.LittleEndian.Uint64(b[:]))
}

// record reads the record at loc.
func (r *fileReader) record(loc recLoc) []byte {
	if r.err != nil {
		return nil
	}
	if int(loc.block) >= len(r.f.blocks) {
		r.fail(errBadIndexFile)
		return nil
	}
	data := r.x.blk.get(r.f, loc.block)
	if data == nil {
		blk := r.f.blocks[loc.block]
		var src io.ReaderAt
		off := int64(blk.off)
		if r.f.hdr.Records == "self" {
			src, off = r.idx, off+r.f.dataOff
		} else {
			if r.log == nil {
				lf, err := os.Open(filepath.Join(r.logDir, filepath.FromSlash(r.f.object)))
				if err != nil {
					r.fail(err)
					return nil
				}
				r.log = lf
			}
			src = r.log
		}
		raw := make([]byte, blk.n)
		if _, err := src.ReadAt(raw, off); err != nil {
			r.fail(fmt.Errorf("%s: %w", r.f.object, err))
			return nil
		}
		var err error
		if data, err = inflateMember(raw); err != nil {
			r.fail(fmt.Errorf("%s: %w", r.f.object, gzipError(err)))
			return nil
		}
		r.x.blk.put(r.f, loc.block, data)
	}
	if uint64(loc.off)+uint64(loc.n) > uint64(len(data)) {
		r.fail(errBadIndexFile)
		return nil
	}
	return data[loc.off : loc.off+loc.n]
}

// top returns the newest q.limit matching records of f below b.
func (x *index) top(f *sealedFile, q indexQuery, code uint8, b bound) ([]indexRow, error) {
	r := &fileReader{x: x, f: f, logDir: x.auditDir}
	defer r.close()
	// The candidates, ascending; all records when post is nil.
	var post []int
	switch q.key {
	case "":
	case AttrEventID:
		tabs, err := x.cache.get(f, r.open, true)
		if err != nil {
			return nil, r.gone(err)
		}
		h := eventIDHash(q.value)
		i, _ := slices.BinarySearch(tabs.hashes, h)
		for ; i < len(tabs.hashes) && tabs.hashes[i] == h; i++ {
			post = append(post, int(tabs.hashOrds[i]))
		}
		if post == nil {
			return nil, nil
		}
		slices.Sort(post)
	default:
		tabs, err := x.cache.get(f, r.open, false)
		if err != nil {
			return nil, r.gone(err)
		}
		want := postKey{code, uint64(attrHash(q.value))}
		i, found := slices.BinarySearchFunc(tabs.keys, want, func(k idxKey, w postKey) int {
			if k.code != w.code {
				return int(k.code) - int(w.code)
			}
			if k.h < w.h {
				return -1
			}
			if k.h > w.h {
				return 1
			}
			return 0
		})
		if !found {
			return nil, nil
		}
		k := tabs.keys[i]
		idx, err := r.open()
		if err != nil {
			return nil, r.gone(err)
		}
		raw := make([]byte, 4*int(k.n))
		if _, err := idx.ReadAt(raw, f.postOff+4*int64(k.first)); err != nil {
			return nil, err
		}
		post = make([]int, k.n)
		for j := range post {
			post[j] = int(binary.LittleEndian.Uint32(raw[4*j:]))
		}
	}
	if _, err := r.open(); err != nil {
		return nil, r.gone(err)
	}
	n := f.hdr.Count
	lo := 0
	if q.start > f.hdr.MinT {
		lo = sort.Search(n, func(i int) bool { return r.t(i) >= q.start })
	}
	hi := n
	if b.t < f.hdr.MaxT || (b.t == f.hdr.MaxT && !b.top) {
		hi = sort.Search(n, func(i int) bool {
			t := r.t(i)
			if t != b.t || b.top {
				return t > b.t
			}
			_, _, e := r.entry(i)
			return e >= b.e
		})
	}
	if r.err != nil {
		return nil, r.err
	}
	if lo >= hi {
		return nil, nil
	}
	var page []indexRow
	take := func(ord int) bool {
		t, loc, eid := r.entry(ord)
		rec := r.record(loc)
		if r.err != nil {
			return false
		}
		switch q.key {
		case "":
		case AttrEventID:
			if eid != q.value {
				return true
			}
		default:
			if !holds(rec, code, q.value) {
				return true
			}
		}
		page = append(page, indexRow{t: t, eid: eid, record: rec})
		return len(page) < q.limit
	}
	if post == nil {
		for ord := hi - 1; ord >= lo && take(ord); ord-- {
		}
	} else {
		from, _ := slices.BinarySearch(post, lo)
		to, _ := slices.BinarySearch(post, hi)
		for j := to - 1; j >= from && take(post[j]); j-- {
		}
	}
	if r.err != nil {
		return nil, r.gone(r.err)
	}
	return page, nil
}

// gone returns nil for an error that says f's log file or index file is
// gone (deleted by retention meanwhile, or by hand), after logging it:
// the lookup goes on without f.
func (r *fileReader) gone(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		r.x.log.Error("audit: LookupEvents skips a log file whose index or records are gone", "file", r.f.object)
		return nil
	}
	return err
}

// eventIDHash is the key of an eventID in an index file's hashes: FNV-1a,
// cheap to compute per record; eventIDs are not chosen by the callers,
// and a collision only costs a comparison.
func eventIDHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

var gzipReaders sync.Pool

// inflateMember returns the inflated bytes of one gzip member.
func inflateMember(raw []byte) ([]byte, error) {
	if len(raw) < 18 {
		return nil, io.ErrUnexpectedEOF
	}
	size := int(binary.LittleEndian.Uint32(raw[len(raw)-4:])) // ISIZE
	if size > 64<<20 {
		return nil, errBadIndexFile
	}
	br := bytes.NewReader(raw)
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(br)
	} else {
		err = zr.Reset(br)
	}
	if err != nil {
		return nil, err
	}
	defer gzipReaders.Put(zr)
	zr.Multistream(false)
	out := make([]byte, size)
	if _, err := io.ReadFull(zr, out); err != nil {
		return nil, err
	}
	var one [1]byte
	if n, err := zr.Read(one[:]); n != 0 || err != io.EOF { // and the CRC checks
		if err == nil || err == io.EOF {
			err = errBadIndexFile
		}
		return nil, err
	}
	return out, nil
}
