"""Model file integrity: `vision.sha256` holds the sha256 of the file as exported, and every load checks it.

The digest covers the file's own bytes, with the digest's 64 hex digits written as zeros, so checking it needs
no ONNX library: a weight overwritten in place, a truncated copy or a file edited after export is refused.
"""

from __future__ import annotations

import hashlib

from service.core.contract import ContractError

DIGEST_KEY = "vision.sha256"
# What the exporter writes as the digest before it computes it; the same length, so no offset moves.
PLACEHOLDER = "0" * 64


def digest_of(data: bytes, written: str) -> str:
    """The sha256 of a model file whose digest field holds `written`, with that field counted as zeros."""
    marker = written.encode("ascii")
    if data.count(marker) != 1:
        raise ContractError(DIGEST_KEY, f"{written!r} must appear exactly once in the file")
    return hashlib.sha256(data.replace(marker, PLACEHOLDER.encode("ascii"))).hexdigest()


def sign(data: bytes) -> bytes:
    """A serialised model whose `vision.sha256` is the placeholder, with its real digest filled in."""
    return data.replace(PLACEHOLDER.encode("ascii"), digest_of(data, PLACEHOLDER).encode("ascii"))


def check(data: bytes, declared: str | None) -> bool:
    """Whether the file carries a digest; a ContractError when the digest does not match its bytes."""
    if declared is None:
        return False
    if len(declared) != len(PLACEHOLDER) or declared == PLACEHOLDER:
        raise ContractError(DIGEST_KEY, "must be the 64 hex digits of a sha256")
    actual = digest_of(data, declared)
    if actual != declared:
        raise ContractError(
            DIGEST_KEY,
            f"the file's sha256 is {actual[:12]}..., its metadata says {declared[:12]}...: it was changed "
            "after export (re-export it, or re-sign it with `python -m training sign`)",
        )
    return True
