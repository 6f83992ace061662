"""Real-architecture bench models: ``transformers`` encoders with random weights, exported and
quantized as the hub's ONNX repos are made (a benchmark's input, not a test's).

The fixture generator's hand-built graphs (``devtools.fixture_model``) have none of the
patterns onnxruntime's ``extended``/``all`` levels fuse in a real export (Attention,
SkipLayerNormalization, BiasGelu, MatMulIntegerToFloat), so they cannot tell which session
settings win on a real model. These can. Each shape is a ``transformers`` config (no download,
random weights from a seed), exported with ``torch.onnx.export`` (the TorchScript exporter, as
Optimum exports the hub's ``onnx/model.onnx``) and quantized with onnxruntime's
``quantize_dynamic(per_channel=True, weight_type=QInt8)`` into ``onnx/model_quantized.onnx``.
Token ids come from the fixture's tokenizers: speed depends on the ids' count, not their spelling.

Needs torch and transformers, which no other environment of the suite has (``nox -s
bench-models`` makes one, with pip: the CPU build of torch lies on these machines' disk, and
uv would fetch a CUDA build of several GB)::

    python -m bench.export_models [--out build/bench-models] [--shapes bert-minilm ...]

Each profile folder is written to a temp name and renamed; an existing one is kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.real_shapes import REAL_SHAPES, RealShape, default_models_dir
from devtools.fixture_model import FixtureSpec, _save_with_sidecar, build_tokenizer

SEED = 7


def _config(shape: RealShape):  # type: ignore[no-untyped-def]  # transformers is untyped
    import transformers

    common = dict(
        vocab_size=shape.vocab,
        hidden_size=shape.dim,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.ffn,
    )
    if shape.family == "bert":
        return transformers.BertConfig(**common, max_position_embeddings=512), transformers.BertModel
    if shape.family == "xlm-roberta":
        # RoBERTa's positions start after the padding id: 514 covers 512 tokens.
        return transformers.XLMRobertaConfig(**common, max_position_embeddings=514), transformers.XLMRobertaModel
    if shape.family == "llama":
        config = transformers.LlamaConfig(
            **common, num_key_value_heads=max(1, shape.heads // 3), max_position_embeddings=shape.max_tokens + 64
        )
        return config, transformers.LlamaModel
    raise ValueError(f"unknown family {shape.family!r}")


def export(shape: RealShape, dest: Path) -> None:
    """Write ``dest`` (a profile folder): tokenizer.json, onnx/model.onnx and onnx/model_quantized.onnx."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.manual_seed(SEED)
    config, model_class = _config(shape)
    config._attn_implementation = "eager"  # the attention an export of the hub's models traces
    model = model_class(config).eval()
    tokenizer_spec = FixtureSpec(bpe_vocab_size=shape.vocab if shape.family == "llama" else None, seed=SEED)
    onnx_dir = dest / "onnx"
    onnx_dir.mkdir(parents=True)
    (dest / "tokenizer.json").write_text(build_tokenizer(tokenizer_spec).to_str(pretty=True) + "\n", encoding="utf-8")
    ids = torch.randint(5, 200, (2, 16), dtype=torch.int64)
    mask = torch.ones_like(ids)

    class LastHidden(torch.nn.Module):  # type: ignore[misc]  # torch is not in the lint environment
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(
                LastHidden(),
                (ids, mask),
                str(raw),
                input_names=["input_ids", "attention_mask"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "last_hidden_state": {0: "batch", 1: "sequence"},
                },
                opset_version=17,
                do_constant_folding=True,
                dynamo=False,
            )
        import onnx

        _save_with_sidecar(onnx.load(str(raw)), onnx_dir / "model.onnx")
        quantized = Path(tmp) / "quantized.onnx"
        quantize_dynamic(
            onnx_dir / "model.onnx",
            quantized,
            per_channel=True,
            weight_type=QuantType.QInt8,
            use_external_data_format=True,
        )
        _save_with_sidecar(onnx.load(str(quantized)), onnx_dir / "model_quantized.onnx")
    # What fastembed reads beside tokenizer.json (bench.bench_peers): the limit and the pad token.
    pad = "<|end_of_text|>" if shape.family == "llama" else "[PAD]"
    (dest / "config.json").write_text(json.dumps({"pad_token_id": 0}) + "\n", encoding="utf-8")
    (dest / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": shape.max_tokens, "pad_token": pad}) + "\n", encoding="utf-8"
    )
    (dest / "special_tokens_map.json").write_text(json.dumps({"pad_token": pad}) + "\n", encoding="utf-8")
    (dest / "bench-shape.json").write_text(json.dumps(shape.describe(), indent=2) + "\n", encoding="utf-8")
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=default_models_dir(), help="where the profile folders go")
    parser.add_argument("--shapes", nargs="*", choices=sorted(REAL_SHAPES), help="default: every shape")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.shapes or sorted(REAL_SHAPES):
        folder = args.out / name
        if folder.is_dir():
            print(f"{name}: kept {folder}")
            continue
        work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=args.out))
        try:
            export(REAL_SHAPES[name], work)
            work.rename(folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        sizes = {p.name: p.stat().st_size for p in (folder / "onnx").iterdir()}
        print(f"{name}: wrote {folder} ({', '.join(f'{k} {v / 2**20:.0f} MiB' for k, v in sorted(sizes.items()))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
