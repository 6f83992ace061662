"""The real-architecture bench shapes (made by ``bench.export_models``; read by the benches)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RealShape:
    """A ``transformers`` architecture's size and the contract's pooling and token limit."""

    family: str  # bert, xlm-roberta or llama
    dim: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_tokens: int
    pooling: Literal["last_token", "mean", "cls"]

    def describe(self) -> dict[str, object]:
        return asdict(self)


REAL_SHAPES = {
    # all-MiniLM-L6-v2's size: BERT, 6 layers, 384 wide, mean pooling.
    "bert-minilm": RealShape("bert", 384, 6, 12, 1536, 30522, 256, "mean"),
    # multilingual-e5-small's size: XLM-RoBERTa, 12 layers, 384 wide, a 250k vocabulary, mean pooling.
    "xlmr-small": RealShape("xlm-roberta", 384, 12, 12, 1536, 250002, 512, "mean"),
    # Shaped like the pin: a decoder (Llama), 768 wide, a 128k vocabulary, last-token pooling.
    "llama-pin": RealShape("llama", 768, 4, 12, 2048, 128256, 1024, "last_token"),
}


def default_models_dir() -> Path:
    return REPO_ROOT / "build" / "bench-models"


def exported_folder(name: str, models_dir: Path | None = None) -> Path:
    """The exported profile folder of ``name``; one line on what to run when it is not there."""
    folder = (models_dir or default_models_dir()) / name
    if not (folder / "onnx" / "model_quantized.onnx").is_file():
        raise SystemExit(f"ERROR: no exported model at {folder}; run `nox -s bench-models` first")
    return folder
