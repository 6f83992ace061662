"""Launch to first vector: the frozen app's ``add`` on the scale fixture, int8 (a benchmark, not a test).

Runs the artifacts of a built project (default: the one ``python -m bench.bench_scale``
leaves in ``build/bench-scale/project``; after a change, ``python -m build_hooks.cli
build-pyinstaller`` in that folder rebuilds it) as a user starts them:
``local-notes add "<note>"``, int8, every CPU up to 8, no network. Two launches:

- first: a new HOME, nothing remembered;
- later: the same HOME again (the canary's proof remembered, see ``embedding_runtime/_proof_memo.py``).

Beside them, interleaved with them, the floor: a bare script on the build
environment's interpreter that imports numpy, onnxruntime and tokenizers, reads
tokenizer.json, creates the session with the runtime's settings (int8: basic
graph optimisation, arena and spinning on, the same threads) and embeds the one
note, and nothing else. The launches are reported as ratios to it: absolute
times differ too much between machines.

For each, the median wall time of ``--reps`` launches and their largest peak RSS
(``VmHWM``, sampled from /proc), then one launch under ``strace`` (timestamps
of exec, file opens and the runtime's log, ``EMBEDDING_RUNTIME_LOG=debug``)
split into phases:

    process start     exec to the app's first numpy file
    imports           numpy, the runtime, argparse; then onnxruntime and tokenizers (the load's first phase)
    folders           finding and checking the profile folders
    tokenizer         reading tokenizer.json
    session           creating the onnxruntime session (and its first run)
    canary            the probe texts (all of them; the shortest when remembered)
    first inference   the load's end to the note's lock file (the vector is made)
    save and exit     the note written, the process gone

(strace slows each traced system call, so the split's sum runs a little over the median. A
runtime without the debug line, an older build, is split by file opens alone: imports then
include the folders' checks, session the canary and the first inference, "(left)" marks the
phases folded into the one to their left.)

    python -m bench.bench_first_vector [--project DIR] [--builders pyinstaller nuitka] [--reps 7]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.bench_scale import SampledRun, sampled_run
from build_hooks.freezing.target import Builder
from devtools.demo_project import APP_NAME, Project
from embedding_runtime.build_api import FORBID_NETWORK_ENV, MODELS_FOLDER, data_path

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTE = "the quarterly report is due on friday, ask ana for the sales figures"
PHASES = ("process start", "imports", "folders", "tokenizer", "session", "canary", "first inference", "save and exit")
_EVENT = re.compile(r"^(?P<pid>\d+)\s+(?P<time>\d+\.\d+) (?P<call>\w+)\((?P<args>.*)")
_LOAD_LINE = re.compile(r"load took ((?:\w+ [\d.]+ s(?:, )?)+)")


# The floor: what any program embedding this note with this model must do (see the module docstring).
FLOOR = """
import sys
import numpy as np, onnxruntime as ort, tokenizers
folder, threads, text = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tokenizer = tokenizers.Tokenizer.from_file(folder + "/tokenizer.json")
tokenizer.no_padding()
tokenizer.enable_truncation(max_length=1024)
options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
options.enable_cpu_mem_arena = True
options.add_session_config_entry("session.intra_op.allow_spinning", "1")
session = ort.InferenceSession(folder + "/onnx/model_quantized.onnx", sess_options=options,
                               providers=["CPUExecutionProvider"])
ids = np.array([tokenizer.encode("Document: " + text).ids], dtype=np.int64)
hidden = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
vector = hidden[0, -1] / np.linalg.norm(hidden[0, -1])
"""


def floor(profile: Path) -> SampledRun:
    """The bare script on ``profile`` (the artifact's bundled copy), its peak RSS sampled from /proc."""
    threads = str(min(8, os.cpu_count() or 1))
    command = [sys.executable, "-c", FLOOR, str(profile), threads, NOTE]
    run = sampled_run(command, {"PATH": "/usr/bin:/bin"}, subprocess.DEVNULL, None, every=0.005)
    if run.returncode != 0:
        raise SystemExit(f"the floor script failed with {run.returncode}")
    return run


def launch(executable: Path, home: Path) -> SampledRun:
    """One ``add`` as a user runs it, its peak RSS sampled from /proc."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), FORBID_NETWORK_ENV: "1"}
    run = sampled_run([str(executable), "add", NOTE], env, subprocess.DEVNULL, None, every=0.005)
    if run.returncode != 0:
        raise SystemExit(f"{executable} add failed with {run.returncode}")
    return run


def phases(executable: Path, home: Path) -> dict[str, float]:
    """One traced launch split into :data:`PHASES` (seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace"
        command = ["strace", "-f", "-ttt", "-s", "400", "--seccomp-bpf", "-o", str(trace)]
        command += ["-e", "trace=execve,openat,write,exit_group", str(executable), "add", NOTE]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), FORBID_NETWORK_ENV: "1", "EMBEDDING_RUNTIME_LOG": "debug"}
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        events = [m.groupdict() for line in trace.read_text().splitlines() if (m := _EVENT.match(line))]
    start = float(events[0]["time"])

    def first(call: str, needle: str) -> float:
        return next(float(e["time"]) for e in events if e["call"] == call and needle in e["args"]) - start

    def last_before(call: str, needle: str, limit: float) -> float:
        times = [float(e["time"]) - start for e in events if e["call"] == call and needle in e["args"]]
        return max(t for t in times if t <= limit)

    numpy_at, saved_at = first("openat", "numpy"), first("openat", "notes.json")
    end = max(float(e["time"]) for e in events) - start
    logged = next((e for e in events if e["call"] == "write" and "load took" in e["args"]), None)
    match = _LOAD_LINE.search(logged["args"]) if logged else None
    if logged is None or match is None:  # a runtime without the line: what file opens tell
        session_at = last_before("openat", "model_quantized.onnx", saved_at)
        tokenizer_at = last_before("openat", "tokenizer.json", session_at)
        return {
            "process start": numpy_at,
            "imports": tokenizer_at - numpy_at,  # with the folders' checks
            "tokenizer": session_at - tokenizer_at,
            "session": saved_at - session_at,  # with the canary and the first inference
            "save and exit": end - saved_at,
        }
    loaded_at = float(logged["time"]) - start
    load = {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+) s", match.group(1))}
    load_started = loaded_at - load["total"]
    return {
        "process start": numpy_at,
        "imports": load_started - numpy_at + load.get("imports", 0.0),
        "folders": load.get("folders", 0.0),
        "tokenizer": load.get("tokenizer", 0.0),
        "session": load.get("session", 0.0),
        "canary": load.get("canary", 0.0),
        "first inference": saved_at - loaded_at,
        "save and exit": end - saved_at,
    }


def measure(executable: Path, profile: Path, reps: int) -> list[tuple[str, float, int, dict[str, float]]]:
    """Per case (floor, first, later): the median seconds and largest peak RSS of ``reps`` runs, taken in
    turns (a floor, a first launch, a later one, then again), and a split of each launch."""
    runs: dict[str, list[SampledRun]] = {"floor": [], "first": [], "later": []}
    for _ in range(reps):
        runs["floor"].append(floor(profile))
        with tempfile.TemporaryDirectory() as home:
            runs["first"].append(launch(executable, Path(home)))  # a new HOME: nothing remembered
            runs["later"].append(launch(executable, Path(home)))  # the same HOME again
    rows = []
    for case, done in runs.items():
        split: dict[str, float] = {}
        if case != "floor":
            with tempfile.TemporaryDirectory() as home:
                if case == "later":
                    launch(executable, Path(home))
                split = phases(executable, Path(home))
        rows.append((case, statistics.median(x.seconds for x in done), max(x.peak_rss for x in done), split))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--project", type=Path, default=REPO_ROOT / "build" / "bench-scale" / "project")
    parser.add_argument("--builders", nargs="+", choices=("pyinstaller", "nuitka"), default=["pyinstaller", "nuitka"])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    if shutil.which("strace") is None:
        parser.error("strace is not installed (apt-get install strace): it times the phases")
    target = Project(args.project).target
    builders: list[Builder] = args.builders
    for builder in builders:
        executable = target.dist_dir(builder) / APP_NAME
        if not executable.is_file():
            parser.error(f"{executable} is missing: run python -m bench.bench_scale first, or build {builder}")
    print(
        f"| artifact | launch | wall (median of {args.reps}) | of the floor | peak RSS | " + " | ".join(PHASES) + " |"
    )
    print("| --- " * (5 + len(PHASES)) + "|")
    for builder in builders:
        dist = target.dist_dir(builder)
        profile = target.data_root(dist) / data_path(MODELS_FOLDER, target.pin.profile_id)
        rows = measure(dist / APP_NAME, profile, args.reps)
        bare = rows[0][1]
        for case, median, peak, split in rows:
            cells = " | ".join(f"{split[p]:.3f}" if p in split else ("-" if not split else "(left)") for p in PHASES)
            print(f"| {builder} | {case} | {median:.3f} s | {median / bare:.2f}x | {peak / 2**20:.0f} MiB | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
