"""Benchmark prepare-model against the loopback hub (a benchmark, not a test).

Reports the cold prepare time as a ratio to ``huggingface_hub.snapshot_download``
of the same files from the same server (goal: at most 1.10, our hashing
included), and the no-op rerun time and request count (goal: under 0.3 s, 0
requests). ``--synthetic-mb`` swaps the fixture weights for random bytes of
that size, to see how hashing scales with a realistic model.

    python -m bench.bench_prepare [--rounds 5] [--synthetic-mb 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np
from huggingface_hub import snapshot_download

from build_hooks.prepare_model import HubSource, PrepareRequest, parse_variants, prepare_profile
from devtools.fixture_model import FixtureSpec, fixture_files
from devtools.loopback_hub import LoopbackHub, serve_hub
from embedding_runtime.build_api import files_for_variants

REPO = "bench/tiny-embedder"
REVISION = "0123456789abcdef0123456789abcdef01234567"
FILES = files_for_variants(parse_variants("both"))


def repo_files(synthetic_mb: int) -> dict[str, bytes]:
    files = fixture_files(FixtureSpec(seed=7, hidden=128, ffn=256))
    if synthetic_mb:
        rng = np.random.default_rng(7)
        files["onnx/model.onnx_data"] = rng.bytes(synthetic_mb * 2**20)
        files["onnx/model_quantized.onnx_data"] = rng.bytes(synthetic_mb * 2**20 // 4)
    return files


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def ours(hub: LoopbackHub, root: Path) -> None:
    request = PrepareRequest(
        repo=REPO,
        revision=REVISION,
        profile_id="bench-profile",
        output_root=root,
        variants=parse_variants("both"),
        sources=(HubSource(hub.base_url, REPO, REVISION),),
    )
    prepare_profile(request)


def theirs(hub: LoopbackHub, root: Path) -> None:
    snapshot_download(REPO, revision=REVISION, endpoint=hub.base_url, cache_dir=root, allow_patterns=list(FILES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--synthetic-mb", type=int, default=0)
    args = parser.parse_args(argv)
    files = repo_files(args.synthetic_mb)
    total_mb = sum(len(files[f]) for f in FILES) / 2**20
    cold_ours: list[float] = []
    cold_theirs: list[float] = []
    noop: list[float] = []
    noop_requests: list[int] = []
    with serve_hub() as hub, tempfile.TemporaryDirectory() as tmp:
        hub.add_repo(REPO, REVISION, files)
        for round_no in range(args.rounds):
            ours_root, theirs_root = Path(tmp) / f"ours{round_no}", Path(tmp) / f"theirs{round_no}"
            # Alternate who goes first so page-cache warmth does not favour one side.
            pair = [("theirs", theirs, theirs_root), ("ours", ours, ours_root)]
            for name, action, root in pair if round_no % 2 else reversed(pair):
                seconds = timed(lambda action=action, root=root: action(hub, root))  # type: ignore[misc]
                (cold_ours if name == "ours" else cold_theirs).append(seconds)
            hub.clear()
            noop.append(timed(lambda root=ours_root: ours(hub, root)))  # type: ignore[misc]
            noop_requests.append(len(hub.requests))
    ratio = statistics.median(cold_ours) / statistics.median(cold_theirs)
    print(f"files: {len(FILES)}, {total_mb:.1f} MiB; rounds: {args.rounds}")
    print(f"cold prepare        median {statistics.median(cold_ours):.3f} s")
    print(f"snapshot_download   median {statistics.median(cold_theirs):.3f} s")
    print(f"ratio (goal <= 1.10)       {ratio:.2f}")
    print(f"no-op rerun         median {statistics.median(noop) * 1000:.1f} ms (goal < 300 ms)")
    print(f"no-op requests      max {max(noop_requests)} (goal 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
