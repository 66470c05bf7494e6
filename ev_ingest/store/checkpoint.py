"""Checkpoints: a chain's state signed and kept outside the bucket, so that removal and
rollback are found by whoever kept one.

A chain's links show a record removed from the middle, but nothing inside the store can
show records cut off its end, or a chain rewritten from some place on by someone who can
rewrite claims too: whoever can rewrite the log can rewrite anything stored in it. So, as
Certificate Transparency does (RFC 9162, signed tree heads), the audit signs each chain's
size, head hash and Merkle tree hash over the record hashes of places 1..size, and the
operator keeps that checkpoint elsewhere (a file, the Airflow metadata database, a print).
A later audit given the checkpoint recomputes the tree hash over the first `size` places of
the chain as it is now: a shorter chain was cut (`truncated`), another hash means a place
was rewritten, removed or rolled back (`rewritten`). The auditor holds every leaf, so no
consistency proof is needed: the prefix's tree hash is recomputed directly.

Leaves are the SHA-256 each place's oldest claim names (hex, as stored); a place without a
readable claim is the empty leaf, so a gap is part of the state, and reported by the chain
check rather than making the checkpoint impossible.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ev_ingest.store.signing import CHECKPOINT, Signer, Verifier, decode

CHECKPOINT_TYPE = "ev-ingest/checkpoint/v1"
MAX_CHECKPOINT_BYTES = 16 << 20


def _leaf(value: str | None) -> bytes:
    # RFC 9162 2.1.1: leaf hashes and node hashes differ in their first byte (no second preimage).
    return hashlib.sha256(b"\x00" + (value or "").encode()).digest()


def tree_hash(leaves: list[str | None]) -> str:
    """RFC 9162's Merkle Tree Hash of the leaves (hex): the tree splits at the largest power of
    two below its size, so a prefix's hash is computed the same way whatever followed it."""

    def mth(start: int, end: int) -> bytes:
        if end - start == 0:
            return hashlib.sha256(b"").digest()
        if end - start == 1:
            return _leaf(leaves[start])
        split = 1 << ((end - start - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + mth(start, start + split) + mth(start + split, end)).digest()

    return mth(0, len(leaves)).hex()


@dataclass(frozen=True)
class ChainState:
    name: str
    size: int  # the head's place
    head: str | None  # the SHA-256 the head's claim names
    root: str  # tree_hash over places 1..size

    @classmethod
    def of(cls, name: str, claims: dict[int, str | None]) -> ChainState:
        size = max(claims, default=0)
        leaves = [claims.get(place) for place in range(1, size + 1)]
        return cls(name, size, claims.get(size), tree_hash(leaves))

    def as_json(self) -> dict[str, Any]:
        return {"size": self.size, "head": self.head, "root": self.root}


def make(bucket: str, at: str, audit_key: str | None, states: list[ChainState], signer: Signer) -> dict[str, Any]:
    """The signed checkpoint of `states` (a DSSE envelope of type `CHECKPOINT`)."""
    return signer.seal(
        CHECKPOINT,
        {
            "type": CHECKPOINT_TYPE,
            "bucket": bucket,
            "at": at,
            "audit_key": audit_key,
            "chains": {s.name: s.as_json() for s in sorted(states, key=lambda s: s.name)},
        },
    )


def load(data: bytes) -> dict[str, Any]:
    """A checkpoint file as stored (an envelope, or a legacy signed checkpoint), not yet
    checked; `ValueError` (one line) for anything that is not one."""
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise ValueError(f"not a checkpoint: {len(data)} bytes")
    try:
        stored = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("not a checkpoint: not JSON") from None
    document = decode(stored)
    if not isinstance(stored, dict) or document is None or document.get("type") != CHECKPOINT_TYPE:
        raise ValueError(f"not a checkpoint: its type is not {CHECKPOINT_TYPE}")
    return stored


def check(
    stored: dict[str, Any], bucket: str, verifier: Verifier, current: dict[str, dict[int, str | None]]
) -> list[tuple[str, str, str]]:
    """What changed since the checkpoint (`stored`, as `load` read it), as (chain, problem,
    detail): nothing when every checkpointed chain still starts with exactly the places it
    had. `current`: chain -> sequence -> claimed SHA-256, of the chains in scope (others are
    not judged)."""
    opened = verifier.open(stored, CHECKPOINT)
    document = opened.document
    if document is None:
        return [("", "checkpoint", f"the checkpoint is not trusted ({opened.problem}): nothing was compared")]
    if document.get("bucket") != bucket:
        return [("", "checkpoint", f"the checkpoint is of bucket {document.get('bucket')!r}, not {bucket!r}")]
    at = document.get("at")
    found = []
    chains = document.get("chains")
    for name, then in sorted(chains.items() if isinstance(chains, dict) else []):
        if name not in current or not isinstance(then, dict) or not isinstance(then.get("size"), int):
            continue
        claims = current[name]
        size, now = then["size"], max(claims, default=0)
        if now < size:
            found.append((name, "truncated", f"the checkpoint of {at} has {size} records, the chain now {now}"))
            continue
        if tree_hash([claims.get(place) for place in range(1, size + 1)]) != then.get("root"):
            found.append(
                (name, "rewritten", f"places 1..{size} are not those of the checkpoint of {at} (removed or rewritten)")
            )
    return found
