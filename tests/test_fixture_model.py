"""The generated fixture model is real, deterministic and laid out like the hub repo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

from devtools.fixture_model import SCALE_SPEC, FixtureSpec, build_byte_level_bpe, cached_fixture_repo, fixture_files
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


# The scale fixture's shape at a test's size: byte-level BPE, several layers, some kept fp32 in int8.
BPE_SPEC = FixtureSpec(seed=5, hidden=32, heads=2, ffn=64, layers=3, bpe_vocab_size=2_000, fp32_layers=(0, 2))


def test_byte_level_bpe_has_the_size_and_the_end_token_last_token_pooling_reads() -> None:
    tokenizer = build_byte_level_bpe(2_000, seed=5)
    assert tokenizer.get_vocab_size() == 2_000
    assert tokenizer.to_str() == build_byte_level_bpe(2_000, seed=5).to_str(), "deterministic"
    text = "Query: the quick brown fox 東京 🙂"
    encoding = tokenizer.encode(text)
    assert encoding.tokens[0] == "<|begin_of_text|>" and encoding.tokens[-1] == "<|end_of_text|>"
    assert "\u0120quick" in encoding.tokens, "a common word (with its space) is one token"
    assert tokenizer.decode(encoding.ids) == text, "bytes round-trip, whatever the script"


def test_scale_spec_is_shaped_like_the_pin() -> None:
    assert (SCALE_SPEC.hidden, SCALE_SPEC.bpe_vocab_size) == (768, 128_256)
    words, positions = 128_256 * 768, 1056 * 768
    per_layer = 4 * 768 * 768 + 2 * 768 * SCALE_SPEC.ffn
    fp32 = 4 * (words + positions + SCALE_SPEC.layers * per_layer)
    quantized_layers = SCALE_SPEC.layers - len(SCALE_SPEC.fp32_layers)
    int8 = words + positions + quantized_layers * per_layer + 4 * len(SCALE_SPEC.fp32_layers) * per_layer
    assert fp32 >= 800 * 2**20 and int8 >= 250 * 10**6, (fp32, int8)


def test_int8_keeps_the_spared_layers_in_fp32_and_still_agrees() -> None:
    files = fixture_files(BPE_SPEC)
    quantized = onnx.load_from_string(files["onnx/model_quantized.onnx"])  # the graph; weights stay in the sidecar
    weights = ("q", "k", "v", "o", "ffn1", "ffn2")
    float_matmuls = {n.input[1] for n in quantized.graph.node if n.op_type == "MatMul" and "_w_" in f"_{n.input[1]}"}
    assert float_matmuls == {f"{layer}w_{w}" for layer in ("", "l2_") for w in weights}
    assert sum(n.op_type == "MatMulInteger" for n in quantized.graph.node) == len(weights), "layer 1 is int8"
    texts = ["hello world", "the quick brown fox", "offline notes", "a"]
    fp32 = _last_token_vectors(files, "model.onnx", texts)
    int8 = _last_token_vectors(files, "model_quantized.onnx", texts)
    assert (fp32 * int8).sum(axis=1).min() >= INT8_AGREEMENT_FLOOR


def test_cached_fixture_is_made_once_per_spec(tmp_path: Path) -> None:
    spec = FixtureSpec(seed=9)
    folder = cached_fixture_repo(spec, tmp_path)
    sidecar = folder / "onnx" / "model.onnx_data"
    made = sidecar.stat().st_mtime_ns
    assert cached_fixture_repo(spec, tmp_path) == folder and sidecar.stat().st_mtime_ns == made, "reused"
    assert sidecar.read_bytes() == fixture_files(spec)["onnx/model.onnx_data"]
    other = cached_fixture_repo(FixtureSpec(seed=10), tmp_path)
    assert other != folder and sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(
        [folder.name, other.name]
    )
