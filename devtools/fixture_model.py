"""Generate a small but real ONNX text-embedding model laid out like a hub repo.

The model is a transformer encoder built from plain ONNX ops (Gather
embeddings, LayerNormalization, multi-head attention with the padding mask,
an Erf-GELU feed-forward block) that returns per-token hidden states, as the
pinned model does. The int8 variant comes from onnxruntime's dynamic
quantization (per channel). The same spec always gives the same bytes.

Tests use small specs (mostly a WordPiece vocabulary and one layer). :data:`SCALE_SPEC`
is shaped and sized like the pinned model for the scale benchmark: a
byte-level BPE tokenizer with a Llama-3 sized vocabulary (built from a seeded
merge list; no trainer), 768 wide, 16 layers, an fp32 sidecar over 800 MiB and
an int8 one over 250 MB. :func:`cached_fixture_repo` keeps one on disk per spec.

Run ``python -m devtools.fixture_model DEST [--scale]`` to write one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

OPSET = 17
MAX_POSITIONS = 1056  # the v1 contract truncates at 1024 tokens, plus prompt room
# Initializers at least this large go to the sidecar; shape constants stay inline
# (onnxruntime refuses shape inputs that live in external data).
_EXTERNAL_THRESHOLD = 1024

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
_WORDS = [
    "query",
    "document",
    "the",
    "a",
    "an",
    "of",
    "to",
    "and",
    "in",
    "is",
    "it",
    "for",
    "on",
    "with",
    "as",
    "that",
    "this",
    "be",
    "are",
    "was",
    "by",
    "from",
    "at",
    "or",
    "not",
    "model",
    "vector",
    "embedding",
    "search",
    "note",
    "notes",
    "memory",
    "text",
    "local",
    "desktop",
    "app",
    "offline",
    "build",
    "bundle",
    "file",
    "cat",
    "dog",
    "bird",
    "fish",
    "tree",
    "river",
    "mountain",
    "city",
    "music",
    "book",
    "paper",
    "code",
    "python",
    "data",
    "token",
    "tokens",
    "cache",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "red",
    "green",
    "blue",
    "small",
    "large",
    "fast",
    "slow",
    "hello",
    "world",
    "test",
    "one",
    "two",
    "three",
]
# Files a real repo carries that the prepare step must never fetch.
EXTRA_REPO_FILES: Mapping[str, bytes] = {
    "README.md": b"---\nlicense: cc-by-nc-4.0\n---\n# tiny embedder (test fixture)\n",
    "config.json": b'{"model_type": "tiny-embedder", "hidden_size": 32}\n',
    "custom_modeling.py": b"raise SystemExit('hub code must never be fetched or run')\n",
    "pytorch_model.bin": b"\x80\x04\x95 not a real pickle, never fetch me",
}


@dataclass(frozen=True)
class FixtureSpec:
    seed: int = 0
    hidden: int = 32
    heads: int = 2
    ffn: int = 64
    with_token_type_ids: bool = False
    layers: int = 1
    # None: the small WordPiece vocabulary; a number: a byte-level BPE vocabulary of that many tokens.
    bpe_vocab_size: int | None = None
    # Layers the int8 variant keeps in fp32 (careful quantizations spare the most sensitive ones).
    fp32_layers: tuple[int, ...] = ()
    # Noise added to every weight, as a share of its scale: 0.1 gives "the same model, 10 % off"
    # (the same weights plus noise from another seed), which the canary must tell from the real one.
    noise: float = 0.0
    # Positions the model has embeddings for: the longest text it can take, prompt included.
    max_positions: int = MAX_POSITIONS


# Shaped and sized like the pinned model: 128,256 tokens (Llama 3), 768 wide, fp32 850 MB, int8 276 MB.
SCALE_SPEC = FixtureSpec(
    seed=17, hidden=768, heads=12, ffn=3072, layers=16, bpe_vocab_size=128_256, fp32_layers=(0, 14, 15)
)
# Byte-level BPE: the 256 byte symbols, merges up to this length, then the special tokens.
_BPE_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>")
_BPE_RESERVED_SPECIALS = 256
_BPE_MAX_TOKEN_CHARS = 12
# Bump when the generator's output changes for the same spec, so cached copies are remade.
GENERATOR_VERSION = 1


def vocabulary() -> dict[str, int]:
    """A fixed WordPiece vocabulary (trainers are not deterministic, so none is trained)."""
    pieces = list(SPECIAL_TOKENS)
    pieces += list("abcdefghijklmnopqrstuvwxyz0123456789.,:;!?'-\"()")
    pieces += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    pieces += [w for w in _WORDS if w not in pieces]
    return {piece: i for i, piece in enumerate(pieces)}


def build_tokenizer(spec: FixtureSpec) -> Tokenizer:
    if spec.bpe_vocab_size is not None:
        return build_byte_level_bpe(spec.bpe_vocab_size, spec.seed)
    vocab = vocabulary()
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # Last-token pooling reads the final [SEP], as the pinned model reads its end token.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def build_byte_level_bpe(vocab_size: int, seed: int) -> Tokenizer:
    """A Llama-3 style byte-level BPE tokenizer with ``vocab_size`` tokens, from a seeded merge list.

    Every merge joins two tokens already in the vocabulary, first those that spell
    the fixture's words (so common words are one token), then seeded random pairs
    up to the size; the last 256 ids are special tokens. Same arguments, same JSON.
    """
    rng = np.random.default_rng(seed)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    tokens = list(alphabet)
    merges: list[tuple[str, str]] = []
    target = vocab_size - _BPE_RESERVED_SPECIALS

    def merge(left: str, right: str) -> None:
        if left + right not in vocab:
            vocab[left + right] = len(vocab)
            tokens.append(left + right)
            merges.append((left, right))

    space = "\u0120"  # the byte-level symbol for " "
    for word in _WORDS:
        for end in range(2, len(word) + 1):
            merge(word[: end - 1], word[end - 1])
        merge(space, word)  # " word" is one token too, as in any English-trained vocabulary
    while len(vocab) < target:
        for left, right in rng.integers(0, len(tokens), size=(4096, 2)):
            a, b = tokens[left], tokens[right]
            if len(a) + len(b) <= _BPE_MAX_TOKEN_CHARS and len(vocab) < target:
                merge(a, b)
    tokenizer = Tokenizer(models.BPE(vocab, merges, fuse_unk=False, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [*_BPE_SPECIALS, *(f"<|reserved_special_token_{i}|>" for i in range(_BPE_RESERVED_SPECIALS - 2))]
    tokenizer.add_special_tokens(specials)
    begin_id, end_id = (tokenizer.token_to_id(t) for t in _BPE_SPECIALS)
    assert begin_id is not None and end_id is not None
    # Last-token pooling reads the end-of-text token the template appends, as the pinned model does.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{_BPE_SPECIALS[0]} $A {_BPE_SPECIALS[1]}",
        pair=f"{_BPE_SPECIALS[0]} $A {_BPE_SPECIALS[1]} $B {_BPE_SPECIALS[1]}",
        special_tokens=[(_BPE_SPECIALS[0], begin_id), (_BPE_SPECIALS[1], end_id)],
    )
    return tokenizer


def build_model(spec: FixtureSpec) -> onnx.ModelProto:
    """The fp32 encoder graph with deterministic weights from ``spec.seed``."""
    rng = np.random.default_rng(spec.seed)
    noise_rng = np.random.default_rng(spec.seed + 7919)  # its own stream: the weights stay the same
    vocab_size: int = spec.bpe_vocab_size or len(vocabulary())
    hidden, heads = spec.hidden, spec.heads

    def weight(name: str, *shape: int, scale: float = 0.2) -> onnx.TensorProto:
        values = rng.standard_normal(shape) * scale
        if spec.noise:
            values = values + noise_rng.standard_normal(shape) * scale * spec.noise
        # float32 throughout: numpy 2 would promote to float64, which quantization refuses.
        return numpy_helper.from_array(values.astype(np.float32), name)

    def const(name: str, values: list[int] | list[float], dtype: type = np.int64) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(values, dtype=dtype), name)

    inits = [
        weight("word_embeddings", vocab_size, hidden, scale=1.0),
        weight("position_embeddings", spec.max_positions, hidden, scale=0.1),
        numpy_helper.from_array(np.ones(hidden, np.float32), "ln0_g"),
        numpy_helper.from_array(np.zeros(hidden, np.float32), "ln0_b"),
        # Layer 0 keeps the unprefixed names (and so the bytes) of the one-layer fixture.
        *(init for layer in range(spec.layers) for init in _block_weights(weight, spec, _prefix(layer))),
        const("split_heads", [0, 0, heads, hidden // heads]),
        const("merge_heads", [0, 0, hidden]),
        const("zero", [0]),
        const("one", [1]),
        const("two", [2]),
        const("scalar_zero", 0),  # type: ignore[arg-type]
        const("scalar_one", 1),  # type: ignore[arg-type]
        const("mask_axes", [1, 2]),
        const("attn_scale", [1.0 / float(np.sqrt(hidden // heads))], np.float32),
        const("neg_big", [-1e4], np.float32),
        const("f_one", [1.0], np.float32),
        const("f_half", [0.5], np.float32),
        const("inv_sqrt2", [1.0 / float(np.sqrt(2.0))], np.float32),
    ]
    n = helper.make_node
    nodes = [
        n("Gather", ["word_embeddings", "input_ids"], ["tok_emb"]),
        n("Shape", ["input_ids"], ["ids_shape"]),
        n("Slice", ["ids_shape", "one", "two", "zero"], ["seq_len_1d"]),
        n("Squeeze", ["seq_len_1d", "zero"], ["seq_len"]),
        n("Range", ["scalar_zero", "seq_len", "scalar_one"], ["positions"]),
        n("Gather", ["position_embeddings", "positions"], ["pos_emb"]),
        n("Add", ["tok_emb", "pos_emb"], ["emb_sum"]),
    ]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    embedded = "emb_sum"
    if spec.with_token_type_ids:
        inits.append(weight("token_type_embeddings", 2, hidden, scale=0.1))
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "sequence"]))
        nodes.append(n("Gather", ["token_type_embeddings", "token_type_ids"], ["type_emb"]))
        nodes.append(n("Add", ["emb_sum", "type_emb"], ["emb_typed"]))
        embedded = "emb_typed"
    nodes += [
        n("LayerNormalization", [embedded, "ln0_g", "ln0_b"], ["x0"], axis=-1, epsilon=1e-5),
    ]
    x_in = "x0"
    for layer in range(spec.layers):
        x_out = "last_hidden_state" if layer == spec.layers - 1 else f"{_prefix(layer)}h"
        nodes += _block_nodes(_prefix(layer), x_in, x_out)
        x_in = x_out
    graph = helper.make_graph(
        nodes,
        "tiny_embedder",
        inputs,
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])],
        initializer=inits,
    )
    for node in graph.node:
        # Named only where quantization must find them: the small fixtures keep their bytes.
        if node.op_type == "MatMul" and any(
            node.input[1].startswith(_prefix(layer) + "w_") for layer in spec.fp32_layers
        ):
            node.name = f"{node.input[1]}_matmul"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fixture")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _fp32_matmuls(spec: FixtureSpec) -> list[str]:
    """Names of the weight MatMuls of the layers the int8 variant keeps in fp32."""
    weights = ("q", "k", "v", "o", "ffn1", "ffn2")
    return [f"{_prefix(layer)}w_{name}_matmul" for layer in spec.fp32_layers for name in weights]


def _prefix(layer: int) -> str:
    return "" if layer == 0 else f"l{layer}_"


def _block_weights(weight: Callable[..., onnx.TensorProto], spec: FixtureSpec, p: str) -> list[onnx.TensorProto]:
    hidden = spec.hidden
    return [
        numpy_helper.from_array(np.ones(hidden, np.float32), f"{p}ln1_g"),
        numpy_helper.from_array(np.zeros(hidden, np.float32), f"{p}ln1_b"),
        numpy_helper.from_array(np.ones(hidden, np.float32), f"{p}ln2_g"),
        numpy_helper.from_array(np.zeros(hidden, np.float32), f"{p}ln2_b"),
        *(weight(f"{p}w_{n}", hidden, hidden) for n in "qkvo"),
        *(weight(f"{p}b_{n}", hidden, scale=0.02) for n in "qkvo"),
        weight(f"{p}w_ffn1", hidden, spec.ffn),
        weight(f"{p}b_ffn1", spec.ffn, scale=0.02),
        weight(f"{p}w_ffn2", spec.ffn, hidden),
        weight(f"{p}b_ffn2", hidden, scale=0.02),
    ]


def _block_nodes(p: str, x_in: str, x_out: str) -> list[onnx.NodeProto]:
    """One encoder layer: attention and an Erf-GELU feed-forward block, each with a residual and LayerNorm."""
    n = helper.make_node
    return [
        *_attention_nodes(p, x_in),
        n("Add", [x_in, f"{p}attn_out"], [f"{p}res1"]),
        n("LayerNormalization", [f"{p}res1", f"{p}ln1_g", f"{p}ln1_b"], [f"{p}x1"], axis=-1, epsilon=1e-5),
        n("MatMul", [f"{p}x1", f"{p}w_ffn1"], [f"{p}ffn_mm"]),
        n("Add", [f"{p}ffn_mm", f"{p}b_ffn1"], [f"{p}ffn_pre"]),
        # GELU as 0.5 * x * (1 + erf(x / sqrt 2)): opset 17 has no Gelu op.
        n("Mul", [f"{p}ffn_pre", "inv_sqrt2"], [f"{p}gelu_scaled"]),
        n("Erf", [f"{p}gelu_scaled"], [f"{p}gelu_erf"]),
        n("Add", [f"{p}gelu_erf", "f_one"], [f"{p}gelu_1p"]),
        n("Mul", [f"{p}ffn_pre", f"{p}gelu_1p"], [f"{p}gelu_x"]),
        n("Mul", [f"{p}gelu_x", "f_half"], [f"{p}ffn_act"]),
        n("MatMul", [f"{p}ffn_act", f"{p}w_ffn2"], [f"{p}ffn_mm2"]),
        n("Add", [f"{p}ffn_mm2", f"{p}b_ffn2"], [f"{p}ffn_out"]),
        n("Add", [f"{p}x1", f"{p}ffn_out"], [f"{p}res2"]),
        n("LayerNormalization", [f"{p}res2", f"{p}ln2_g", f"{p}ln2_b"], [x_out], axis=-1, epsilon=1e-5),
    ]


def _attention_nodes(p: str, x_in: str) -> list[onnx.NodeProto]:
    make = helper.make_node
    nodes = []
    for name in "qkv":
        nodes += [
            make("MatMul", [x_in, f"{p}w_{name}"], [f"{p}{name}_mm"]),
            make("Add", [f"{p}{name}_mm", f"{p}b_{name}"], [f"{p}{name}_flat"]),
            make("Reshape", [f"{p}{name}_flat", "split_heads"], [f"{p}{name}_split"]),
        ]
    nodes += [
        make("Transpose", [f"{p}q_split"], [f"{p}q_heads"], perm=[0, 2, 1, 3]),
        make("Transpose", [f"{p}k_split"], [f"{p}k_heads_t"], perm=[0, 2, 3, 1]),
        make("Transpose", [f"{p}v_split"], [f"{p}v_heads"], perm=[0, 2, 1, 3]),
        make("MatMul", [f"{p}q_heads", f"{p}k_heads_t"], [f"{p}scores_raw"]),
        make("Mul", [f"{p}scores_raw", "attn_scale"], [f"{p}scores_scaled"]),
        # Padding positions get a large negative bias so they take no attention.
        make("Cast", ["attention_mask"], [f"{p}mask_f"], to=TensorProto.FLOAT),
        make("Sub", ["f_one", f"{p}mask_f"], [f"{p}mask_inv"]),
        make("Mul", [f"{p}mask_inv", "neg_big"], [f"{p}mask_bias_2d"]),
        make("Unsqueeze", [f"{p}mask_bias_2d", "mask_axes"], [f"{p}mask_bias"]),
        make("Add", [f"{p}scores_scaled", f"{p}mask_bias"], [f"{p}scores"]),
        make("Softmax", [f"{p}scores"], [f"{p}probs"], axis=-1),
        make("MatMul", [f"{p}probs", f"{p}v_heads"], [f"{p}ctx_heads"]),
        make("Transpose", [f"{p}ctx_heads"], [f"{p}ctx_split"], perm=[0, 2, 1, 3]),
        make("Reshape", [f"{p}ctx_split", "merge_heads"], [f"{p}ctx"]),
        make("MatMul", [f"{p}ctx", f"{p}w_o"], [f"{p}o_mm"]),
        make("Add", [f"{p}o_mm", f"{p}b_o"], [f"{p}attn_out"]),
    ]
    return nodes


def write_fixture_repo(dest: Path, spec: FixtureSpec = FixtureSpec()) -> dict[str, bytes]:
    """Write the repo files under ``dest`` and return them as ``{posix path: bytes}``."""
    return {path: (dest / path).read_bytes() for path in write_fixture_files(dest, spec)}


def write_fixture_files(dest: Path, spec: FixtureSpec = FixtureSpec()) -> list[str]:
    """Write the repo files under ``dest``; their posix paths, sorted."""
    onnx_dir = dest / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    (dest / "tokenizer.json").write_text(build_tokenizer(spec).to_str(pretty=True) + "\n", encoding="utf-8")
    _save_with_sidecar(build_model(spec), onnx_dir / "model.onnx")
    excluded = [
        f"{_prefix(layer)}w_{name}_matmul"
        for layer in spec.fp32_layers
        for name in ("q", "k", "v", "o", "ffn1", "ffn2")
    ]
    _quantize(onnx_dir / "model.onnx", onnx_dir / "model_quantized.onnx", excluded)
    for name, data in EXTRA_REPO_FILES.items():
        (dest / name).write_bytes(data)
    paths = []
    for path in sorted(dest.rglob("*")):
        if path.is_file():
            path.chmod(0o644)  # onnx writes sidecars 0600; a hub serves them to anyone
            paths.append(path.relative_to(dest).as_posix())
    return paths


def cached_fixture_repo(spec: FixtureSpec, cache_root: Path) -> Path:
    """The repo folder of ``spec`` under ``cache_root``, generated on first use and reused after.

    Keyed by the spec, the generator version and the onnx/onnxruntime versions
    (quantization output may change with them); made in a temp folder and
    renamed, so an interrupted generation is never mistaken for a cached one.
    """
    import onnxruntime
    from filelock import FileLock

    identity = repr((sorted(asdict(spec).items()), GENERATOR_VERSION, onnx.__version__, onnxruntime.__version__))
    folder = cache_root / f"fixture-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
    cache_root.mkdir(parents=True, exist_ok=True)
    with FileLock(cache_root / f"{folder.name}.lock"):
        if not folder.is_dir():
            work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=cache_root))
            try:
                write_fixture_files(work, spec)
                (work / ".fixture-spec").write_text(identity + "\n", encoding="utf-8")
                work.chmod(0o755)  # mkdtemp makes it private; a hub serves it to anyone
                work.rename(folder)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return folder


def fixture_files(spec: FixtureSpec = FixtureSpec()) -> dict[str, bytes]:
    """The repo files of ``spec`` in memory."""
    with tempfile.TemporaryDirectory() as tmp:
        return write_fixture_repo(Path(tmp), spec)


def _save_with_sidecar(model: onnx.ModelProto, path: Path) -> None:
    sidecar = path.name + "_data"
    (path.parent / sidecar).unlink(missing_ok=True)  # onnx appends to an existing sidecar
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=sidecar,
        size_threshold=_EXTERNAL_THRESHOLD,
    )


def _quantize(fp32_path: Path, int8_path: Path, nodes_to_exclude: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "quantized.onnx"
        # Per channel: per-tensor int8 agreed with fp32 at a min cosine of only 0.89 on a real model.
        quantize_dynamic(
            fp32_path,
            raw,
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=nodes_to_exclude,
            use_external_data_format=True,  # a large model's protobuf would pass the 2 GB limit
        )
        # Re-save: quantize_dynamic would name the sidecar `.onnx.data`, the hub layout says `.onnx_data`.
        _save_with_sidecar(onnx.load(str(raw)), int8_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--scale", action="store_true", help="the scale benchmark's model (SCALE_SPEC, ~1.1 GB)")
    args = parser.parse_args(argv)
    spec = SCALE_SPEC if args.scale else FixtureSpec(seed=args.seed, hidden=args.hidden, ffn=2 * args.hidden)
    for path in write_fixture_files(args.dest, spec):
        size = (args.dest / path).stat().st_size
        print(f"{size:>11}  {path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
