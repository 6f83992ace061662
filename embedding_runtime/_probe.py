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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from embedding_runtime._artifact import DATA_FOLDER, PROBE_RECORD_FILE
from embedding_runtime._layout import PreparedMarker, read_marker
from embedding_runtime._locations import ProcessFacts, bundled_data_roots
from embedding_runtime._records import read_json_record
from embedding_runtime._resolve import CANARY_MISMATCH, FORGED_MARKER

PROBE_SCHEMA = 3
# Honest differences between CPUs and thread counts move fp32 vectors by about 1e-6.
FP32_MIN_COSINE = 0.9999
# How far int8 may agree less with fp32 on the user's CPU than on the build's: onnxruntime runs int8
# through other kernels on other CPUs. Measured min cosine over the probe texts, AVX-512 VNNI vs
# AVX2-only: the demo fixture 0.9630 vs 0.9555 (an emulated Haswell, `nox -s canary-cpus`), the
# 32-wide fixture 0.9998 vs 0.9977; with the earlier three probe texts 0.987 vs 0.982, 0.9997 vs
# 0.981, and a real MiniLM model 0.972 vs 0.973. The widest spread, 0.019, with half again as
# headroom. The demo's weights with 10 % noise fall 0.16 short of its figure; a model that shrugs
# noise off (the 32-wide fixture: 0.024 short) is then as close to the real one as another CPU is.
INT8_CPU_MARGIN = 0.03
_RECORD_MAX_BYTES = 1024 * 1024

Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class ProbeRecord:
    """What the build recorded for the canary: the probe texts' fp32 vectors, and how well the
    bundled int8 agreed with them on the build's CPU (``None``: no int8 was bundled)."""

    profile_id: str
    texts: tuple[str, ...]
    fp32: npt.NDArray[np.float32]  # (len(texts), full dimension), L2-normalised
    int8_min_cosine: float  # the configuration's absolute floor
    int8_agreement: float | None = None  # the bundled int8's min cosine to fp32, on the build's CPU
    # The sha256 of each file of the profile the vectors were made from (path in the folder -> digest).
    sources: Mapping[str, str] = field(default_factory=dict)

    def made_from(self, digests: Mapping[str, str]) -> bool:
        """Were these very bytes (``digests``: sha256 by path in the folder) what the record was made
        from? Then they need no proof that they compute its vectors, only that this CPU does."""
        return bool(digests) and all(self.sources.get(name) == digest for name, digest in digests.items())

    @property
    def int8_floor(self) -> float:
        """What an int8 folder must reach: the build's own agreement less the cross-CPU margin,
        never below the configuration's absolute floor."""
        if self.int8_agreement is None:
            return self.int8_min_cosine
        return max(self.int8_min_cosine, self.int8_agreement - INT8_CPU_MARGIN)

    def shortest(self) -> ProbeRecord:
        """This record cut to its shortest probe text: a folder proven before re-proves itself with it."""
        index = min(range(len(self.texts)), key=lambda i: len(self.texts[i]))
        return replace(self, texts=(self.texts[index],), fp32=self.fp32[index : index + 1])

    def to_bytes(self) -> bytes:
        """The record file's bytes, as the build writes them (and verify expects them)."""
        return json.dumps(self.to_json(), sort_keys=True).encode() + b"\n"

    def to_json(self) -> dict[str, object]:
        return {
            "schema": PROBE_SCHEMA,
            "profile_id": self.profile_id,
            "texts": list(self.texts),
            "int8_min_cosine": self.int8_min_cosine,
            "int8_agreement": None if self.int8_agreement is None else round(self.int8_agreement, 6),
            "fp32": [[round(float(x), 7) for x in row] for row in self.fp32],
            "sources": dict(sorted(self.sources.items())),
        }


def read_probe_record(path: Path) -> ProbeRecord | None:
    """The record at ``path``; ``None`` when there is none or it is not a valid record."""
    raw = read_json_record(path, _RECORD_MAX_BYTES)
    try:
        if not isinstance(raw, dict) or raw.get("schema") != PROBE_SCHEMA:
            return None
        vectors = np.asarray(raw["fp32"], dtype=np.float32)
        texts = tuple(str(t) for t in raw["texts"])
        if vectors.ndim != 2 or len(vectors) != len(texts) or not np.isfinite(vectors).all():
            return None
        agreement = raw.get("int8_agreement")
        agreement = None if agreement is None else float(agreement)
        sources = {str(name): str(digest) for name, digest in dict(raw["sources"]).items()}
        return ProbeRecord(str(raw["profile_id"]), texts, vectors, float(raw["int8_min_cosine"]), agreement, sources)
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def bundled_probe_record(profile_id: str, facts: ProcessFacts | None = None) -> ProbeRecord | None:
    """The record the app was built with, from its own bundled data (never from a model folder)."""
    for root in bundled_data_roots(facts):
        record = read_probe_record(root / DATA_FOLDER / PROBE_RECORD_FILE)
        if record is not None and record.profile_id == profile_id:
            return record
    return None


def forged_marker_problem(folder: Path, reference: PreparedMarker | None) -> str | None:
    """Why ``folder`` contradicts the bundled profile's marker ``reference``: it names the same repo
    and revision, so its files must be the same bytes, yet it records other hashes. ``None`` otherwise."""
    marker = read_marker(folder) if reference is not None else None
    if marker is None or reference is None or (marker.repo, marker.revision) != (reference.repo, reference.revision):
        return None
    differs = sorted(
        n for n in marker.files.keys() & reference.files.keys() if marker.files[n].sha256 != reference.files[n].sha256
    )
    if not differs:
        return None
    return (
        f"{FORGED_MARKER}: it names the bundled model's pin ({marker.repo}@{marker.revision[:12]}) "
        f"but records other bytes for {', '.join(differs)}"
    )


def canary_problem(record: ProbeRecord, variant: str, embed: Embed) -> str | None:
    """Why the weights behind ``embed`` are not the recorded ones, or ``None`` when they agree.

    ``embed`` must turn the record's texts into vectors as the build did: as documents, full width.
    """
    vectors = embed(record.texts)
    if vectors.shape != record.fp32.shape:
        return f"{CANARY_MISMATCH}: probe vectors have shape {vectors.shape}, the record {record.fp32.shape}"
    low = float((vectors * record.fp32).sum(axis=1).min())
    floor = FP32_MIN_COSINE if variant == "fp32" else record.int8_floor
    if low < floor:
        return (
            f"{CANARY_MISMATCH}: {variant} probe vectors agree with the recorded fp32 ones at min cosine "
            f"{low:.4f}, below {floor:.4f} (wrong or damaged weights)"
        )
    return None
