#!/usr/bin/env python3
"""Independent check of the envelope v1 known-answer vectors.

Re-derives every object in this directory from the inputs described in the
file's comment lines, using Python's `cryptography` package instead of Go,
and compares byte for byte. Not run by `go test` (CI has no `cryptography`);
run by hand after any change to the vectors:

    python3 internal/crypto/envelope/testdata/kat/verify.py
"""
import glob
import hashlib
import json
import os
import re
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def parse(path):
    meta, body, slots, keys = {}, "", [], []
    for line in open(path):
        line = line.rstrip("\n")
        if not line.startswith("#"):
            body += line
            continue
        m = re.match(r"# slot (\d+): source=(\d+) key_id=(\".*\") wrapped=([0-9a-f]+)$", line)
        if m:
            slots.append((int(m[2]), json.loads(m[3]).encode(), bytes.fromhex(m[4])))
        m = re.match(r"# data key (\d+): ([0-9a-f]+)$", line)
        if m:
            keys.append(bytes.fromhex(m[2]))
        m = re.match(r"# (seg_shift|identity|plaintext): (.*)$", line)
        if m:
            meta[m[1]] = m[2]
    n, descr = re.match(r"(\d+) bytes, (.*), sha256 [0-9a-f]+$", meta["plaintext"]).groups()
    n = int(n)
    if descr.startswith('"'):
        pt = json.loads(descr).encode()
    else:
        assert descr == "byte i = (7*i + 3) mod 251", descr
        pt = bytes((7 * i + 3) % 251 for i in range(n))
    assert len(pt) == n
    return int(meta["seg_shift"]), slots, keys, json.loads(meta["identity"]).encode(), pt, bytes.fromhex(body)


def seal(shift, slots, keys, identity, pt):
    hdr = b"CFE\x00" + bytes([1, shift, len(slots)])
    for source, key_id, wrapped in slots:
        hdr += bytes([source]) + struct.pack(">H", len(key_id)) + key_id
        hdr += struct.pack(">H", len(wrapped)) + wrapped
    base = hashlib.sha256(b"coffer-envelope-v1" + hdr + struct.pack(">I", len(identity)) + identity).digest()
    size = 1 << shift
    n = max(1, -(-len(pt) // size))
    out = hdr
    for i in range(n):
        nonce = struct.pack(">Q", i) + b"\x00\x00\x00" + (b"\x01" if i == n - 1 else b"\x00")
        c = pt[i * size:(i + 1) * size]
        for j, key in enumerate(keys):
            c = AESGCM(key).encrypt(nonce, c, base + bytes([j]))
        out += c
    return out


def main():
    paths = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "*.hex")))
    ok = True
    for path in paths:
        shift, slots, keys, identity, pt, want = parse(path)
        got = seal(shift, slots, keys, identity, pt)
        status = "ok" if got == want else "MISMATCH"
        ok &= got == want
        print(f"{status:8} {os.path.basename(path)} ({len(want)} bytes)")
    if not paths or not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
