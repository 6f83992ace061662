"""The generated fixture model is real, deterministic and laid out like the hub repo."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from devtools.fixture_model import FixtureSpec, fixture_files
from tests.runtime_fixtures import INT8_AGREEMENT_FLOOR


def _last_token_vectors(files: dict[str, bytes], model: str, texts: list[str]) -> np.ndarray:
    import tempfile
    from pathlib import Path

    tokenizer = Tokenizer.from_str(files["tokenizer.json"].decode())
    encodings = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)
    ids = np.array([e.ids + [0] * (width - len(e.ids)) for e in encodings], dtype=np.int64)
    mask = np.array([[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in encodings], dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_bytes(data)
        session = ort.InferenceSession(str(Path(tmp) / "onnx" / model), providers=["CPUExecutionProvider"])
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in {i.name for i in session.get_inputs()}:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(None, feeds)[0]
    vectors = hidden[np.arange(len(texts)), mask.sum(axis=1) - 1]
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


def test_same_seed_gives_the_same_bytes(repo_files_a: dict[str, bytes]) -> None:
    assert fixture_files(FixtureSpec(seed=1)) == repo_files_a


def test_other_seed_gives_other_weights(repo_files_a: dict[str, bytes], repo_files_b: dict[str, bytes]) -> None:
    assert repo_files_a["onnx/model.onnx_data"] != repo_files_b["onnx/model.onnx_data"]
    assert repo_files_a["tokenizer.json"] == repo_files_b["tokenizer.json"]


def test_int8_variant_agrees_with_fp32(repo_files_a: dict[str, bytes]) -> None:
    texts = ["hello world", "the quick brown fox jumps over the lazy dog", "offline notes", "a"]
    fp32 = _last_token_vectors(repo_files_a, "model.onnx", texts)
    int8 = _last_token_vectors(repo_files_a, "model_quantized.onnx", texts)
    agreement = (fp32 * int8).sum(axis=1)
    assert agreement.min() >= INT8_AGREEMENT_FLOOR, agreement
    assert (fp32 @ fp32.T)[0, 1] < 0.95, "different texts give different vectors"


def test_token_type_ids_variant_declares_the_input() -> None:
    files = fixture_files(FixtureSpec(seed=3, with_token_type_ids=True))
    vectors = _last_token_vectors(files, "model.onnx", ["hello"])
    assert vectors.shape == (1, 32)
