"""Profile folders for runtime tests, laid out as prepare-model writes them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from build_hooks.config import DEFAULT_INT8_MIN_COSINE
from embedding_runtime._layout import MARKER_NAME, files_for_variants
from embedding_runtime._profiles import ProfileContract

# int8 kernels differ by CPU (VNNI, AVX2-only u8s8 with saturation, AVX-512, ARM64 dot product),
# so int8 figures do too: the fixture's min cosine to fp32 was above 0.99 with VNNI and 0.981
# on an AVX2-only EPYC. Tests hold it to verify's floor plus a margin, which every CPU clears.
INT8_AGREEMENT_FLOOR = DEFAULT_INT8_MIN_COSINE + 0.10

FIXTURE_PROFILE = ProfileContract(
    profile_id="fixture-v1",
    dimension=32,
    matryoshka_dims=(8, 16, 32),
    pooling="last_token",
    max_tokens=64,
    query_prompt="Query: ",
    document_prompt="Document: ",
    batch_token_budget=256,
)


def write_profile(
    root: Path,
    files: dict[str, bytes],
    variants: Iterable[str] = ("fp32", "int8"),
    *,
    profile_id: str = FIXTURE_PROFILE.profile_id,
    marker: bool = True,
    revision: str = "a" * 40,
) -> Path:
    """Write ``root/<profile_id>/`` with the variants' files (and a marker, as prepare-model does)."""
    folder = root / profile_id
    names = files_for_variants(tuple(variants))
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(files[name])
    if marker:
        entries = {
            name: {"size": len(files[name]), "sha256": hashlib.sha256(files[name]).hexdigest(), "mtime_ns": 0}
            for name in names
        }
        raw = {"schema": 1, "profile_id": profile_id, "repo": "acme/tiny", "revision": revision}
        raw |= {"variants": list(variants), "files": entries}
        (folder / MARKER_NAME).write_text(json.dumps(raw))
    return folder


def reference_hidden(
    folder: Path, variant: str, texts: list[str], max_tokens: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Per-token states and mask for ``texts``, computed one text at a time with plain onnxruntime."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    name = "model.onnx" if variant == "fp32" else "model_quantized.onnx"
    session = ort.InferenceSession(str(folder / "onnx" / name), providers=["CPUExecutionProvider"])
    rows = [tokenizer.encode(t).ids for t in texts]
    width = max(len(r) for r in rows)
    hidden = np.zeros((len(rows), width, FIXTURE_PROFILE.dimension), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        # One text per run, unpadded: the reference cannot share the runtime's batching bugs.
        ids = np.array([row], dtype=np.int64)
        hidden[i, : len(row)] = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        mask[i, : len(row)] = 1
    return hidden, mask


def normalized(vectors: np.ndarray) -> np.ndarray:
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
