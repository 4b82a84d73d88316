"""Asset and anchor names: ASCII, file-name safe, unique per input (a hash of it appended),
so no suite, model or plugin name can add markup or write outside ``assets/``."""

from __future__ import annotations

import hashlib
import re

_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(*parts: object, length: int = 48) -> str:
    """An ASCII file-name-safe slug of ``parts``, unique per input (short hash appended)."""
    raw = "\x1f".join(str(p) for p in parts)
    text = _SLUG.sub("-", raw.lower()).strip("-")[:length].strip("-") or "x"
    return f"{text}-{hashlib.sha256(raw.encode('utf-8')).hexdigest()[:8]}"
