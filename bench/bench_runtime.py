"""Benchmark the runtime's defaults against the best bare onnxruntime configuration (not a test).

For each thread count (1, 2, all cores) it sweeps a bare tokenizers +
onnxruntime loop over the same corpus, from text to pooled vectors as the
runtime goes: session options first (memory arena, spinning, graph
optimisation level) at a 1024-token budget, then token budgets (batch-1, 256
… 4096) with the best options. It then runs the runtime's default
configuration (``EmbeddingService``, threads pinned to the same count) and the
best bare configuration interleaved, ``--reps`` times in this one process, and
reports texts/s, the median of the per-repetition ratios runtime ÷ best bare
(runs on these machines vary by ~10%: only interleaved ratios mean anything),
and the peak RSS of one pass of each, measured in a child process of its own.

The model is one of the fixture generator's shapes (``--shape``): ``pin``, shaped
like the pinned model (last-token pooling, 768 hidden, 1024 tokens, 4 layers);
``minilm``, a MiniLM-class sentence model (mean pooling, 384 hidden, 256 tokens,
6 layers); ``long`` (CLS pooling, 512 hidden, 2048 tokens, 4 layers). The real architectures of
``bench.real_shapes`` (``bert-minilm``, ``xlmr-small``, ``llama-pin``: exported from
``transformers`` by ``nox -s bench-models``) are shapes too.
``--model-dir`` takes any profile folder with its contract (``--dim``,
``--pooling``, ``--max-tokens``).

    python -m bench.bench_runtime [--shape minilm] [--variant int8] [--texts 240] [--reps 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from bench.real_shapes import REAL_SHAPES, RealShape, exported_folder
from devtools.corpus import mixed_length_texts
from devtools.fixture_model import MAX_POSITIONS, FixtureSpec, write_fixture_repo
from embedding_runtime import EmbeddingService, ModelRoot, ProfileContract
from embedding_runtime.build_api import token_budget_batches

PROFILE_ID = "bench-v1"
PROMPT = "Document: "
# 0: one text per run. Past 4096 every shape only lost speed and gained memory (2048-token rows:
# attention alone is heads x 2048² floats a row).
BUDGETS = (0, 256, 512, 1024, 2048, 4096)
OPTIMIZATION = ("all", "extended", "basic")
SWEEP_BUDGET = 1024


@dataclass(frozen=True)
class Shape:
    """A fixture model's shape and its contract's pooling and token limit."""

    dim: int
    layers: int
    max_tokens: int
    pooling: str


SHAPES = {
    "pin": Shape(dim=768, layers=4, max_tokens=1024, pooling="last_token"),
    "minilm": Shape(dim=384, layers=6, max_tokens=256, pooling="mean"),
    "long": Shape(dim=512, layers=4, max_tokens=2048, pooling="cls"),
}


@dataclass(frozen=True)
class Bare:
    """A bare onnxruntime configuration: session options and the batching budget."""

    threads: int
    arena: bool = True
    spinning: bool = True
    optimization: str = "all"
    budget: int = SWEEP_BUDGET

    @property
    def label(self) -> str:
        opt = f"arena {'on' if self.arena else 'off'}, spin {'on' if self.spinning else 'off'}, opt {self.optimization}"
        return f"bare {opt}, budget {self.budget or 'batch-1'}"


def contract(args: argparse.Namespace) -> ProfileContract:
    return ProfileContract(
        PROFILE_ID, args.dim, (args.dim,), args.pooling, max_tokens=args.max_tokens, document_prompt=PROMPT
    )


def bare_tokenizer(folder: Path, max_tokens: int) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


def bare_session(model: Path, config: Bare) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.threads
    options.enable_cpu_mem_arena = config.arena
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options.graph_optimization_level = levels[config.optimization]
    return ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


def bare_pass(
    session: ort.InferenceSession, tokenizer: Tokenizer, texts: Sequence[str], budget: int, pooling: str
) -> None:
    """Texts to pooled vectors, as an app would write it: the whole corpus tokenized in one call."""
    ids = [e.ids for e in tokenizer.encode_batch([PROMPT + t for t in texts])]
    batches = [[i] for i in range(len(ids))] if budget == 0 else token_budget_batches([len(r) for r in ids], budget)
    for rows in batches:
        width = max(len(ids[r]) for r in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            input_ids[i, : len(ids[r])] = ids[r]
            mask[i, : len(ids[r])] = 1
        hidden = session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        if pooling == "mean":  # the same pooling as the runtime's, at the same cost
            (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        elif pooling == "cls":
            hidden[:, 0]
        else:
            hidden[np.arange(len(rows)), mask.sum(axis=1) - 1]


def runtime_service(root: Path, args: argparse.Namespace, threads: int) -> EmbeddingService:
    env = {"EMBEDDING_RUNTIME_VARIANT": args.variant, "EMBEDDING_RUNTIME_THREADS": str(threads)}
    service = EmbeddingService(contract(args), roots=[ModelRoot(root, "bundled")], env=env)
    service.load()
    return service


def texts_per_second(action: Any, count: int) -> float:
    started = time.perf_counter()
    action()
    return count / (time.perf_counter() - started)


def sweep(
    model: Path, tokenizer: Tokenizer, texts: Sequence[str], threads: int, reps: int, pooling: str
) -> tuple[Bare, dict[Bare, float]]:
    """The best bare configuration for ``threads``: options at the sweep's budget, then budgets."""
    results: dict[Bare, float] = {}

    def measure(configs: list[Bare]) -> None:
        sessions = {c: bare_session(model, c) for c in {replace_budget(c, SWEEP_BUDGET) for c in configs}}
        runs: dict[Bare, list[float]] = {c: [] for c in configs}
        for _ in range(reps):  # interleaved: every configuration once per repetition
            for config in configs:
                session = sessions[replace_budget(config, SWEEP_BUDGET)]
                run = partial(bare_pass, session, tokenizer, texts, config.budget, pooling)
                runs[config].append(texts_per_second(run, len(texts)))
        results.update({c: statistics.median(r) for c, r in runs.items()})

    grid = [Bare(threads, a, s, o) for a, s, o in itertools.product((True, False), (True, False), OPTIMIZATION)]
    measure(grid)
    best_options = max(grid, key=results.__getitem__)
    measure([replace_budget(best_options, b) for b in BUDGETS if b != SWEEP_BUDGET])
    return max(results, key=results.__getitem__), results


def replace_budget(config: Bare, budget: int) -> Bare:
    return Bare(config.threads, config.arena, config.spinning, config.optimization, budget)


def peak_rss_mib(mode: str, root: Path, args: argparse.Namespace, config: Bare) -> float:
    """One pass in a child process of its own: its peak RSS is this configuration's alone."""
    command = [sys.executable, "-m", "bench.bench_runtime", *sys.argv[1:], "--child", mode, "--root", str(root)]
    command += ["--config", json.dumps(asdict(config))]
    out = subprocess.run(
        command, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    return float(out.stdout.split()[-1])


def child(args: argparse.Namespace) -> None:
    config = Bare(**json.loads(args.config))
    root = Path(args.root)
    texts = mixed_length_texts(args.texts)
    if args.child == "runtime":
        runtime_service(root, args, config.threads).embed_documents(texts)
    else:
        tokenizer = bare_tokenizer(root / PROFILE_ID, args.max_tokens)
        bare_pass(bare_session(model_file(root, args), config), tokenizer, texts, config.budget, args.pooling)
    print(_peak_rss_mib())


def _peak_rss_mib() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child would report its parent's peak.
    status = Path("/proc/self/status")
    if status.is_file():
        line = next(row for row in status.read_text().splitlines() if row.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def model_file(root: Path, args: argparse.Namespace) -> Path:
    return root / PROFILE_ID / "onnx" / ("model.onnx" if args.variant == "fp32" else "model_quantized.onnx")


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another file system
        shutil.copy2(source, dest)


def prepare_root(args: argparse.Namespace, tmp: Path) -> Path:
    root = tmp / "roots"
    root.mkdir()
    if args.model_dir:  # linked file by file: the runtime refuses a profile folder that is a symlink
        shutil.copytree(Path(args.model_dir), root / PROFILE_ID, copy_function=_link_or_copy)
    else:
        spec = FixtureSpec(
            seed=5,
            hidden=args.dim,
            heads=max(1, args.dim // 64),
            ffn=2 * args.dim,
            layers=args.layers,
            max_positions=max(MAX_POSITIONS, args.max_tokens + 32),
        )
        write_fixture_repo(root / PROFILE_ID, spec)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--texts", type=int, default=240)
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (at least 5)")
    parser.add_argument("--variant", default="int8", choices=("fp32", "int8"))
    parser.add_argument(
        "--shape",
        default="pin",
        choices=sorted(SHAPES) + sorted(REAL_SHAPES),
        help="a hand-built fixture's shape (default: pin), or a real architecture's (nox -s bench-models exports them)",
    )
    parser.add_argument("--model-dir", help="a profile folder to benchmark instead of the fixture")
    parser.add_argument("--dim", type=int, help="with --model-dir: its width")
    parser.add_argument("--pooling", choices=("last_token", "mean", "cls"), help="with --model-dir: its pooling")
    parser.add_argument("--max-tokens", type=int, help="with --model-dir: its token limit")
    parser.add_argument("--threads", type=int, nargs="*", help="thread counts (default: 1, 2 and all cores)")
    parser.add_argument("--child", choices=("runtime", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shape: Shape | RealShape = SHAPES[args.shape] if args.shape in SHAPES else REAL_SHAPES[args.shape]
    if isinstance(shape, RealShape) and not args.model_dir:
        args.model_dir = str(exported_folder(args.shape))
    args.layers = shape.layers
    args.dim = args.dim or shape.dim
    args.pooling = args.pooling or shape.pooling
    args.max_tokens = args.max_tokens or shape.max_tokens
    if args.child:
        child(args)
        return 0
    thread_counts = sorted(set(args.threads or [1, 2, os.cpu_count() or 1]))
    with tempfile.TemporaryDirectory() as tmp:
        root = prepare_root(args, Path(tmp))
        texts = mixed_length_texts(args.texts)
        tokenizer = bare_tokenizer(root / PROFILE_ID, args.max_tokens)
        tokens = sum(len(e.ids) for e in tokenizer.encode_batch([PROMPT + t for t in texts]))
        model = model_file(root, args)
        print(f"corpus: {len(texts)} texts, {tokens} tokens; model: {args.model_dir or args.shape} "
              f"({args.variant}); {args.reps} interleaved repetitions")  # fmt: skip
        print("| threads | runtime default | best bare configuration | bare | ratio | RSS runtime / bare |")
        print("| --- | --- | --- | --- | --- | --- |")
        for threads in thread_counts:
            best, swept = sweep(model, tokenizer, texts, threads, max(3, args.reps // 2), args.pooling)
            for config, speed in sorted(swept.items(), key=lambda item: -item[1]):  # all: rules are chosen from it
                print(f"|   | sweep: {config.label}: {speed:.1f} texts/s |  |  |  |  |")
            service = runtime_service(root, args, threads)
            session = bare_session(model, best)
            ratios, ours, theirs = [], [], []
            for _ in range(args.reps):
                ours.append(texts_per_second(partial(service.embed_documents, texts), len(texts)))
                bare = partial(bare_pass, session, tokenizer, texts, best.budget, args.pooling)
                theirs.append(texts_per_second(bare, len(texts)))
                ratios.append(ours[-1] / theirs[-1])
            rss = (peak_rss_mib("runtime", root, args, best), peak_rss_mib("bare", root, args, best))
            print(f"| {threads} | {statistics.median(ours):.1f} texts/s | {best.label} | "
                  f"{statistics.median(theirs):.1f} texts/s | {statistics.median(ratios):.2f} | "
                  f"{rss[0]:.0f} / {rss[1]:.0f} MiB |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
