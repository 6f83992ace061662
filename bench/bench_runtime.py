"""Benchmark the embedding runtime (a benchmark, not a test).

On a mixed-length corpus it reports texts per second and peak memory for:

- ``runtime``: EmbeddingService.embed_documents, end to end (tokenizing included);
- ``plain``: a bare onnxruntime loop over the identical pre-tokenized batches
  (goal: runtime >= 0.95x of it, i.e. the runtime adds almost nothing);
- ``naive``: fixed batches of 32 in input order, padded to the longest text
  (goal: runtime >= 1.5x of it).

Each mode runs in its own process so that peak RSS is its own. By default it
generates a fixture model; ``--model-dir`` takes any profile folder (with
tokenizer.json and onnx/) and ``--dim``/``--pooling``/``--max-tokens`` its contract.

    python -m bench.bench_runtime [--texts 2000] [--hidden 384] [--variant int8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from embedding_runtime import EmbeddingService, ModelRoot, ProfileContract
from embedding_runtime._service import token_budget_batches

NAIVE_BATCH = 32
PROFILE_ID = "bench-v1"


def corpus(count: int, seed: int = 11) -> list[str]:
    """Mostly short notes, some paragraphs, a few pasted pages: lengths spread over two orders."""
    from devtools.fixture_model import vocabulary

    words = [w for w in vocabulary() if w.isalpha() and len(w) > 1]
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.lognormal(mean=3.0, sigma=1.1, size=count).astype(int) + 1, 900)
    return [" ".join(rng.choice(words, size=n)) for n in lengths]


def contract(args: argparse.Namespace) -> ProfileContract:
    return ProfileContract(
        PROFILE_ID, args.dim, (args.dim,), args.pooling, max_tokens=args.max_tokens, document_prompt="Document: "
    )


def run_mode(args: argparse.Namespace) -> dict[str, float]:
    texts = corpus(args.texts)
    env = {"EMBEDDING_RUNTIME_VARIANT": args.variant, "EMBEDDING_RUNTIME_THREADS": str(args.threads)}
    service = EmbeddingService(contract(args), roots=[ModelRoot(Path(args.root), "bundled")], env=env)
    service.load()
    engine = service._engine  # the bench reuses the loaded session and tokenizer for the baselines
    assert engine is not None
    prompted = ["Document: " + t for t in texts]
    ids = [e.ids for e in engine.tokenizer.encode_batch(prompted)]
    rss_before = _peak_rss_mib()

    def once() -> None:
        if args.mode == "runtime":
            service.embed_documents(texts)
        elif args.mode == "plain":
            for rows in token_budget_batches([len(i) for i in ids], engine.contract.batch_token_budget):
                _plain_run(engine.session, [ids[r] for r in rows])
        else:
            for start in range(0, len(ids), NAIVE_BATCH):
                _plain_run(engine.session, ids[start : start + NAIVE_BATCH])

    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        once()
        timings.append(time.perf_counter() - started)
    seconds = float(np.median(timings))
    return {"texts_per_s": len(texts) / seconds, "peak_rss_mib": _peak_rss_mib(), "rss_before_mib": rss_before}


def _plain_run(session: object, batch: list[list[int]]) -> None:
    width = max(len(r) for r in batch)
    input_ids = np.zeros((len(batch), width), dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    for i, row in enumerate(batch):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    session.run(None, {"input_ids": input_ids, "attention_mask": mask})  # type: ignore[attr-defined]


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def prepare_root(args: argparse.Namespace, tmp: Path) -> Path:
    if args.model_dir:
        root = tmp / "roots"
        root.mkdir()
        (root / PROFILE_ID).symlink_to(Path(args.model_dir).resolve())
        return root
    from devtools.fixture_model import FixtureSpec, write_fixture_repo

    heads = max(1, args.hidden // 64)
    write_fixture_repo(
        tmp / "roots" / PROFILE_ID, FixtureSpec(seed=5, hidden=args.hidden, heads=heads, ffn=2 * args.hidden)
    )
    return tmp / "roots"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=384, help="fixture model width (without --model-dir)")
    parser.add_argument("--model-dir", help="a profile folder to benchmark instead of the fixture")
    parser.add_argument("--dim", type=int, help="output dimension of --model-dir (default: --hidden)")
    parser.add_argument("--pooling", default="last_token", choices=("last_token", "mean", "cls"))
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--variant", default="int8", choices=("fp32", "int8"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="passes per mode; the median counts")
    parser.add_argument("--mode", choices=("runtime", "plain", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.dim = args.dim or args.hidden
    if args.mode:
        print(json.dumps(run_mode(args)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = prepare_root(args, Path(tmp))
        results = {}
        for mode in ("runtime", "plain", "naive"):
            cmd = [sys.executable, "-m", "bench.bench_runtime", *sys.argv[1:], "--mode", mode, "--root", str(root)]
            out = subprocess.run(
                cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
            )
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"corpus: {args.texts} mixed-length texts; model: {args.model_dir or f'fixture hidden={args.hidden}'}; "
          f"{args.variant}, {args.threads} thread(s)")  # fmt: skip
    for mode, r in results.items():
        print(f"{mode:8} {r['texts_per_s']:8.1f} texts/s   peak RSS {r['peak_rss_mib']:7.1f} MiB")
    speed = {mode: r["texts_per_s"] for mode, r in results.items()}
    print(f"runtime / plain onnxruntime loop: {speed['runtime'] / speed['plain']:.2f}x (goal >= 0.95)")
    print(f"runtime / naive fixed batches:    {speed['runtime'] / speed['naive']:.2f}x (goal >= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
