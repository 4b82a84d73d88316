"""The one place that turns data into seeds and stable ids.

* ``seed63(data, person=b"")``: a 63-bit seed (a non-negative int64) from bytes, by BLAKE2b.
  Callers keep their own encoding of what they hash (an id, a tuple's ``repr``, pixel
  bytes), so every random stream stays what it was; only the hashing is shared.
* ``stable_hash(payload, length)``: a short hex id of any JSON-able payload (unit ids,
  cache keys, suite fingerprints): SHA-256 of its sorted-key JSON.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

_MASK63 = 0x7FFF_FFFF_FFFF_FFFF


def seed63(*chunks: bytes, person: bytes = b"") -> int:
    """A seed in ``[0, 2**63)`` from the BLAKE2b-64 digest of ``chunks`` (fed in order)."""
    digest = hashlib.blake2b(digest_size=8, person=person)
    for chunk in chunks:
        digest.update(chunk)
    return int.from_bytes(digest.digest(), "little") & _MASK63


def seed_of(*parts: Any) -> int:
    """``seed63`` of ``repr(parts)``: a seed from plain values (ints, strings, tuples)."""
    return seed63(repr(parts).encode())


def stable_hash(payload: Any, length: int = 16) -> str:
    """A hex id of ``payload``: the same payload gives the same id on every machine."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
