"""Canary vectors: a model folder proves its weights before it serves.

The build records the fp32 vectors of a few fixed probe texts, computed from
the prepared profile, into the app's own bundled data (never into a model
folder, which a user could replace along with it). Before a folder serves,
the runtime embeds the same texts with the variant it is about to serve:
fp32 must agree almost exactly (honest CPU differences are about 1e-6), int8
at least at the floor the build promised. Scrambled or corrupted weights load
and return unit vectors; only this comparison shows them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from embedding_runtime._artifact import DATA_FOLDER, PROBE_RECORD_FILE
from embedding_runtime._locations import ProcessFacts, bundled_data_roots
from embedding_runtime._resolve import CANARY_MISMATCH

PROBE_SCHEMA = 1
# Honest differences between CPUs and thread counts move fp32 vectors by about 1e-6.
FP32_MIN_COSINE = 0.9999
_RECORD_MAX_BYTES = 1024 * 1024

Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class ProbeRecord:
    profile_id: str
    texts: tuple[str, ...]
    fp32: npt.NDArray[np.float32]  # (len(texts), full dimension), L2-normalised
    int8_min_cosine: float

    def to_json(self) -> dict[str, object]:
        return {
            "schema": PROBE_SCHEMA,
            "profile_id": self.profile_id,
            "texts": list(self.texts),
            "int8_min_cosine": self.int8_min_cosine,
            "fp32": [[round(float(x), 7) for x in row] for row in self.fp32],
        }


def read_probe_record(path: Path) -> ProbeRecord | None:
    """The record at ``path``; ``None`` when there is none or it is not a valid record."""
    try:
        with path.open("rb") as fh:
            data = fh.read(_RECORD_MAX_BYTES + 1)
        raw = json.loads(data.decode("utf-8")) if len(data) <= _RECORD_MAX_BYTES else None
        if not isinstance(raw, dict) or raw.get("schema") != PROBE_SCHEMA:
            return None
        vectors = np.asarray(raw["fp32"], dtype=np.float32)
        texts = tuple(str(t) for t in raw["texts"])
        if vectors.ndim != 2 or len(vectors) != len(texts) or not np.isfinite(vectors).all():
            return None
        return ProbeRecord(str(raw["profile_id"]), texts, vectors, float(raw["int8_min_cosine"]))
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def bundled_probe_record(profile_id: str, facts: ProcessFacts | None = None) -> ProbeRecord | None:
    """The record the app was built with, from its own bundled data (never from a model folder)."""
    for root in bundled_data_roots(facts):
        record = read_probe_record(root / DATA_FOLDER / PROBE_RECORD_FILE)
        if record is not None and record.profile_id == profile_id:
            return record
    return None


def canary_problem(record: ProbeRecord, variant: str, embed: Embed) -> str | None:
    """Why the weights behind ``embed`` are not the recorded ones, or ``None`` when they agree.

    ``embed`` must turn the record's texts into vectors as the build did: as documents, full width.
    """
    vectors = embed(record.texts)
    if vectors.shape != record.fp32.shape:
        return f"{CANARY_MISMATCH}: probe vectors have shape {vectors.shape}, the record {record.fp32.shape}"
    low = float((vectors * record.fp32).sum(axis=1).min())
    floor = FP32_MIN_COSINE if variant == "fp32" else record.int8_min_cosine
    if low < floor:
        return (
            f"{CANARY_MISMATCH}: {variant} probe vectors agree with the recorded fp32 ones at min cosine "
            f"{low:.4f}, below {floor} (wrong or damaged weights)"
        )
    return None
