"""What verify-artifact costs on a built project, phase by phase (not a test).

Runs ``<code-root>/scripts/verify_artifact.py`` on a project's artifacts as the
verify step does (a child process, the suite from ``--code-root``, so that two
checkouts, before and after a change, are timed on the same artifacts' project),
``--rounds`` times, and reports the medians of what each verify report records:
the static checks, the self-check, and (from verify that re-derives every file)
the time spent deriving the freezer's reference, PyInstaller's analysis re-run
or Nuitka's rebuild. The first round of a new checkout may rebuild or analyse in
full; ``--warm`` rounds run first and are not counted.

    python -m bench.bench_verify --project build/demo [--code-root .] [--rounds 5] [--warm 1] [--static-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIELDS = ("seconds", "static_seconds", "reference_seconds", "self_check_seconds")


def run_once(code_root: Path, project: Path, static_only: bool) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as reports:
        command = [sys.executable, str(code_root / "scripts" / "verify_artifact.py"), "--reports", reports]
        env = {**os.environ, "PYTHONPATH": str(code_root)}
        started = time.monotonic()
        result = subprocess.run(
            [*command, *(["--static-only"] if static_only else [])],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        if result.returncode != 0:
            raise SystemExit(f"verify failed in {project}: {result.stderr[-2000:]}")
        found: dict[str, dict[str, float]] = {}
        for path in sorted(Path(reports).glob("*.verify.json")):
            report = json.loads(path.read_text())
            found[report["builder"]] = {field: float(report.get(field, 0.0)) for field in FIELDS}
        found["process"] = {"seconds": wall}
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--project", type=Path, required=True, help="a project folder with built artifacts")
    parser.add_argument("--code-root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warm", type=int, default=1, help="rounds run first and not counted")
    parser.add_argument("--static-only", action="store_true", help="leave out the artifacts' self-checks")
    args = parser.parse_args(argv)
    project, code_root = args.project.resolve(), args.code_root.resolve()
    for _ in range(args.warm):
        run_once(code_root, project, args.static_only)
    rounds = [run_once(code_root, project, args.static_only) for _ in range(args.rounds)]
    print(f"verify-artifact from {code_root} on {project}: median of {args.rounds} rounds (seconds)")
    print(f"{'artifact':12} " + " ".join(f"{field:>18}" for field in FIELDS))
    for name in rounds[0]:
        medians = [statistics.median(r[name].get(field, 0.0) for r in rounds) for field in FIELDS]
        print(f"{name:12} " + " ".join(f"{value:18.2f}" for value in medians))
    return 0


if __name__ == "__main__":
    sys.exit(main())
