"""Hashing throughput of the pipeline's helpers against `sha256sum` on the same file (not a test).

The prepare step, the builds' preflight and verify hash every model byte; the
goal is to stay at least as fast as coreutils' `sha256sum` on a sidecar of
realistic size (the pinned fp32 sidecar is ~800 MB). Each tool reads the file
from the page cache (one warm-up read first), median of ``--rounds``.

    python -m bench.bench_hashing [--mib 512] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from build_hooks.prepare_model.hashing import digest_file
from embedding_runtime.build_api import sha256_file


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mib", type=int, default=512, help="size of the sidecar-like file")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    sha256sum = shutil.which("sha256sum")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx_data"
        with path.open("wb") as fh:
            for _ in range(args.mib):
                fh.write(bytes(range(256)) * 4096)
        tools: dict[str, Callable[[], object]] = {
            "sha256_file (runtime, verify)": lambda: sha256_file(path),
            "digest_file (prepare: sha256)": lambda: digest_file(path),
            "digest_file (prepare: sha256 + git blob id)": lambda: digest_file(path, git_blob_id=True),
        }
        if sha256sum:
            tools["sha256sum"] = lambda: subprocess.run([sha256sum, str(path)], check=True, capture_output=True)
        sha256_file(path)  # warm the page cache
        results = {name: [timed(action) for _ in range(args.rounds)] for name, action in tools.items()}
    print(f"{args.mib} MiB file, median of {args.rounds} rounds")
    for name, seconds in results.items():
        median = statistics.median(seconds)
        print(f"{name:45} {args.mib / median:8.0f} MiB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
