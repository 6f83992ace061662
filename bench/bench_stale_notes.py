"""Notes made with another model, embedded again at the first search (a benchmark, not a test).

An app upgraded to a new profile finds every stored vector stale: its first
``search`` embeds each note again and saves the new vectors. This runs a built
project's artifact as a user does (``local-notes search "<query>"``, int8, every
CPU up to 8, no network) over a ``notes.json`` of ``--notes`` short notes whose
vectors are another model's, and reports the wall time, the bytes the program
wrote (``wchar``: every save rewrites the whole file) and its peak RSS, sampled
from /proc. It then checks that every note was saved with the running model's
stamp. The same command against another project (an older build) gives the
figures before a change.

    python -m bench.bench_stale_notes --project build/demo [--notes 10000 100000] [--builders pyinstaller]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.bench_scale import sampled_run
from build_hooks.freezing.target import Builder
from devtools.demo_project import APP_NAME, Project
from devtools.fixture_model import vocabulary
from embedding_runtime.build_api import FORBID_NETWORK_ENV

STALE_STAMP = "another-model-v9-384d-int8-mlen512-in1"


def short_notes(count: int, seed: int = 5) -> list[str]:
    """Notes as a notes app holds them: 3 to 25 words."""
    words = [w for w in vocabulary() if w.isalpha() and len(w) > 1]
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=int(rng.integers(3, 26)))) for _ in range(count)]


def run(executable: Path, count: int) -> tuple[float, int, int, int]:
    """Seconds, bytes written, peak RSS and notes saved anew of one search over ``count`` stale notes."""
    with tempfile.TemporaryDirectory() as home:
        folder = Path(home) / ".local" / "share" / APP_NAME
        folder.mkdir(parents=True)
        notes = [{"text": text, "stamp": STALE_STAMP, "vector": "AAAA"} for text in short_notes(count)]
        (folder / "notes.json").write_text(json.dumps(notes), encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": home, FORBID_NETWORK_ENV: "1"}
        result = sampled_run([str(executable), "search", "the weather"], env, subprocess.DEVNULL, None, every=0.05)
        if result.returncode != 0:
            raise SystemExit(f"{executable} search failed with {result.returncode}")
        saved = json.loads((folder / "notes.json").read_text(encoding="utf-8"))
        renewed = sum(1 for note in saved if note["stamp"] != STALE_STAMP)
        return result.seconds, result.written, result.peak_rss, renewed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--project", type=Path, required=True, help="a project folder with built artifacts")
    parser.add_argument("--notes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--builders", nargs="+", choices=("pyinstaller", "nuitka"), default=["pyinstaller"])
    args = parser.parse_args(argv)
    target = Project(args.project.resolve()).target
    builders: list[Builder] = args.builders
    print(f"stale notes embedded again by one search, {args.project}")
    print("| artifact | notes | seconds | notes/s | written | peak RSS | saved anew |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for builder in builders:
        executable = target.dist_dir(builder) / APP_NAME
        for count in args.notes:
            seconds, written, peak, renewed = run(executable, count)
            print(f"| {builder} | {count:,} | {seconds:.1f} | {count / seconds:.0f} | {written / 2**20:,.0f} MiB "
                  f"| {peak / 2**20:.0f} MiB | {renewed:,} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
