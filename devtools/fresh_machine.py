"""Prove the README on a fresh clone: its set-up line, then `nox -s demo` and `nox -s tests adoption docs`, timed.

Standard library only, so it runs on a machine that has nothing but Python 3.11
and a C compiler. Caches start empty (uv's and Nuitka's point into the work
folder), so the first round is what a new user waits; each later round reruns
the commands with the caches the first one filled. ``--warm-uv`` keeps this
machine's uv cache instead: "cold" is then an empty Nuitka cache with a warm uv
cache, what CI waits on a Nuitka cache miss. The Nuitka build's own time is
read from the demo's log ("built ... in N s").

    python -m devtools.fresh_machine [--rounds 2] [--workdir DIR] [--demo-only] [--warm-uv]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("nox -s demo", "nox -s tests adoption docs")


@dataclass(frozen=True)
class Timing:
    round: str
    command: str
    seconds: float
    exit_code: int


def setup_line(readme: Path) -> str:
    """The README's set-up line: the shell line that creates the tools' virtual environment."""
    for block in re.findall(r"```bash\n(.*?)```", readme.read_text(encoding="utf-8"), re.DOTALL):
        for line in block.splitlines():
            if " -m venv " in line:
                return str(line).strip()
    raise SystemExit(f"ERROR: {readme} shows no set-up line (a `python -m venv` line in a bash block)")


def cpu_description() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    name = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
    flags_line = re.search(r"^flags\s*:\s*(.+)$", info, re.MULTILINE)
    flags = set(flags_line.group(1).split()) if flags_line else set()
    vnni = "with VNNI" if {"avx512_vnni", "avx_vnni"} & flags else "without VNNI"
    return f"{name.group(1) if name else platform.machine()}, {os.cpu_count()} CPUs, {vnni}"


def nuitka_seconds(log: Path) -> float | None:
    """The Nuitka build's time as the build step printed it in ``log`` (``None``: it printed none)."""
    try:
        found = re.findall(r"^built \S*nuitka\S* in (\d+) s", log.read_text(encoding="utf-8"), re.MULTILINE)
    except OSError:
        return None
    return float(found[0]) if found else None


def run_timed(command: str, cwd: Path, env: Mapping[str, str], log: Path) -> tuple[float, int]:
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        result = subprocess.run(["bash", "-c", command], cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    return time.monotonic() - started, result.returncode


def prove(workdir: Path, rounds: int, commands: Sequence[str] = COMMANDS, warm_uv: bool = False) -> list[Timing]:
    clone = workdir / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {**os.environ, "NUITKA_CACHE_DIR": str(workdir / "nuitka-cache")}
    if not warm_uv:
        env["UV_CACHE_DIR"] = str(workdir / "uv-cache")
    env.pop("VIRTUAL_ENV", None)
    timings: list[Timing] = []
    seconds, code = run_timed(setup_line(clone / "README.md"), clone, env, workdir / "setup.log")
    timings.append(Timing("cold", "set-up line", seconds, code))
    for number in range(rounds):
        label = "cold" if number == 0 else f"warm {number}"
        for command in commands:
            if code != 0:
                return timings
            log = workdir / f"{label.replace(' ', '-')}-{command.split()[-1]}.log"
            print(f"# {label}: {command} (log: {log})", flush=True)
            seconds, code = run_timed(f". .tools/bin/activate && {command}", clone, env, log)
            timings.append(Timing(label, command, seconds, code))
            if command == "nox -s demo" and (nuitka := nuitka_seconds(log)) is not None:
                timings.append(Timing(label, "  Nuitka build", nuitka, code))
    return timings


def table(timings: Sequence[Timing]) -> str:
    lines = [f"{'round':8} {'command':14} {'time':>9}  result"]
    for t in timings:
        lines.append(
            f"{t.round:8} {t.command:14} {t.seconds:8.0f}s  {'ok' if t.exit_code == 0 else f'exit {t.exit_code}'}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.fresh_machine", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="1 = cold only; 2 = cold, then warm (default)")
    parser.add_argument("--workdir", type=Path, help="where the clone and its caches go (default: a temp folder)")
    parser.add_argument("--demo-only", action="store_true", help="time `nox -s demo` alone (not the tests)")
    parser.add_argument("--warm-uv", action="store_true", help="keep this machine's uv cache (cold: Nuitka's only)")
    args = parser.parse_args(argv)
    if subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip():
        print("WARNING: uncommitted changes are not in the clone; commit them to prove them", file=sys.stderr)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fresh-machine-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# fresh clone of {ROOT} in {workdir}; CPU: {cpu_description()}", flush=True)
    timings = prove(workdir, args.rounds, COMMANDS[:1] if args.demo_only else COMMANDS, args.warm_uv)
    print(table(timings))
    return 0 if all(t.exit_code == 0 for t in timings) else 1


if __name__ == "__main__":
    sys.exit(main())
