package registry

import (
	"errors"
	"hash"
	"io"
)

const (
	copyBufSize = 1 << 20
	copyBufs    = 4
)

// copyHashing copies src to dst while hashing the same bytes into h on a
// second goroutine, so that SHA-256 (the costliest step of a push) runs in
// parallel with encryption and the disk write. It uses copyBufs buffers of
// copyBufSize: memory stays constant whatever the size of src.
func copyHashing(dst io.Writer, src io.Reader, h hash.Hash) (int64, error) {
	toHash := make(chan []byte, copyBufs)
	hashed := make(chan []byte, copyBufs)
	go func() {
		for b := range toHash {
			h.Write(b)
			hashed <- b
		}
		close(hashed)
	}()
	free := make([][]byte, 0, copyBufs)
	allocated := 0
	var written int64
	var err error
	for {
		var buf []byte
		switch {
		case len(free) > 0:
			buf, free = free[len(free)-1], free[:len(free)-1]
		case allocated < copyBufs:
			buf = make([]byte, copyBufSize)
			allocated++
		default:
			buf = <-hashed
		}
		buf = buf[:cap(buf)]
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			toHash <- buf[:n]
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
				break
			}
			written += int64(n)
		} else {
			free = append(free, buf)
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
				err = rerr
			}
			break
		}
	}
	close(toHash)
	for range hashed { // wait until h holds every byte
	}
	return written, err
}
