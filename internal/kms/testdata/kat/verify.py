#!/usr/bin/env python3
"""Independent check of Coffer's KMS ciphertext blob v1 (docs/kms.md).

Re-derives every known-answer vector given on the command line from its
inputs with the `cryptography` package's AES-GCM, from the format
description alone, and decrypts the stored blob. Exits non-zero on any
mismatch.
"""
import json
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def canonical_context(ec):
    keys = sorted(k.encode() for k in ec)
    out = struct.pack(">I", len(keys))
    by_bytes = {k.encode(): v.encode() for k, v in ec.items()}
    for k in keys:
        v = by_bytes[k]
        out += struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v
    return out


def check(path):
    v = json.load(open(path))
    key_id = v["keyId"].encode()
    header = bytes([1, len(key_id)]) + key_id + struct.pack(">I", v["materialVersion"])
    nonce = bytes.fromhex(v["nonce"])
    aad = header + canonical_context(v.get("encryptionContext") or {})
    aead = AESGCM(bytes.fromhex(v["material"]))
    blob = header + nonce + aead.encrypt(nonce, v["plaintext"].encode(), aad)
    if blob.hex() != v["blob"]:
        raise SystemExit(f"{path}: derived blob differs:\n{blob.hex()}\n{v['blob']}")
    stored = bytes.fromhex(v["blob"])
    n = stored[1]
    h = stored[: 6 + n]
    pt = aead.decrypt(stored[6 + n : 18 + n], stored[18 + n :], h + canonical_context(v.get("encryptionContext") or {}))
    if pt.decode() != v["plaintext"]:
        raise SystemExit(f"{path}: stored blob decrypts to {pt!r}")
    print(f"{path}: ok")


for p in sys.argv[1:]:
    check(p)
