"""The runtime beside fastembed on the real-architecture models (a benchmark, not a test).

Both embed the same corpus (``devtools.corpus``, the document prompt on every text) with the
same exported model, truncated at the contract's token limit, interleaved in one process:
``--reps`` repetitions of one pass each, medians reported with the median ratio. fastembed is
given its own defaults (batches of 256 texts) and the thread count; the runtime its defaults.

Needs fastembed, which no other environment of the suite has: ``nox -s bench-peers`` makes one
(the runtime beside it needs only numpy, onnxruntime and tokenizers, pinned as the lock pins them).

    python -m bench.bench_peers [--shapes bert-minilm ...] [--variant int8 fp32] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from bench.bench_runtime import PROFILE_ID, PROMPT, _link_or_copy
from bench.real_shapes import REAL_SHAPES, RealShape, exported_folder
from devtools.corpus import mixed_length_texts
from embedding_runtime import EmbeddingService, ModelRoot, ProfileContract


def fastembed_model(name: str, shape: RealShape, folder: Path, variant: str, threads: int):  # type: ignore[no-untyped-def]
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    model = f"bench/{name}-{variant}"
    if model not in {m["model"] for m in TextEmbedding.list_supported_models()}:
        TextEmbedding.add_custom_model(
            model=model,
            pooling={"mean": PoolingType.MEAN, "cls": PoolingType.CLS, "last_token": PoolingType.LAST_TOKEN}[
                shape.pooling
            ],
            normalization=True,
            sources=ModelSource(hf=model),
            dim=shape.dim,
            model_file="onnx/model.onnx" if variant == "fp32" else "onnx/model_quantized.onnx",
        )
    return TextEmbedding(model, specific_model_path=str(folder), threads=threads, providers=["CPUExecutionProvider"])


def runtime_service(shape: RealShape, root: Path, variant: str, threads: int) -> EmbeddingService:
    contract = ProfileContract(
        PROFILE_ID, shape.dim, (shape.dim,), shape.pooling, max_tokens=shape.max_tokens, document_prompt=PROMPT
    )
    env = {"EMBEDDING_RUNTIME_VARIANT": variant, "EMBEDDING_RUNTIME_THREADS": str(threads)}
    service = EmbeddingService(contract, roots=[ModelRoot(root, "bundled")], env=env)
    service.load()
    return service


def _all(vectors: Iterable[object]) -> None:
    """Read fastembed's generator to its end: its work happens as it is read."""
    for _ in vectors:
        pass


def rate(action: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    action()
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shapes", nargs="*", choices=sorted(REAL_SHAPES), help="default: every shape")
    parser.add_argument("--variant", nargs="*", choices=("fp32", "int8"), default=["fp32", "int8"])
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--texts", type=int, default=240)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    texts = mixed_length_texts(args.texts)
    print(f"corpus: {len(texts)} texts; {args.reps} interleaved repetitions, medians")
    print("| shape | variant | threads | runtime | fastembed 0.9.1 | runtime / fastembed |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.shapes or sorted(REAL_SHAPES):
        shape, folder = REAL_SHAPES[name], exported_folder(name)
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(folder, Path(tmp) / PROFILE_ID, copy_function=_link_or_copy)
            for variant in args.variant:
                for threads in args.threads:
                    service = runtime_service(shape, Path(tmp), variant, threads)
                    peer = fastembed_model(name, shape, folder, variant, threads)
                    prompted = [PROMPT + t for t in texts]
                    ours, theirs, ratios = [], [], []
                    for _ in range(args.reps):
                        ours.append(rate(partial(service.embed_documents, texts), len(texts)))
                        theirs.append(rate(partial(_all, peer.embed(prompted)), len(texts)))
                        ratios.append(ours[-1] / theirs[-1])
                    print(
                        f"| {name} | {variant} | {threads} | {statistics.median(ours):.1f} texts/s | "
                        f"{statistics.median(theirs):.1f} texts/s | {statistics.median(ratios):.2f} |",
                        flush=True,
                    )
                    service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
