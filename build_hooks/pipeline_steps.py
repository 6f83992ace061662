"""Guards and reporting shared by the nox sessions (kept here so they are tested)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from build_hooks.config import load_config


@dataclass(frozen=True)
class StepOutcome:
    step: str
    seconds: float
    result: str


def artifact_sizes(dist_root: Path) -> dict[str, int]:
    """Bytes of every artifact folder under ``dist_root`` (nuitka/*.dist, pyinstaller/*)."""
    sizes = {}
    for folder in sorted(p for p in dist_root.glob("*/*") if p.is_dir()):
        sizes[f"{folder.parent.name}/{folder.name}"] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return sizes


def clean_targets(project_root: Path, *, with_profile: bool = False) -> list[Path]:
    """What `nox -s clean` removes: builds, the prepare step's working folders, temp files.

    The prepared profile and the tiktoken cache stay unless ``with_profile``: they
    cost a download to recreate.
    """
    config = load_config(project_root / "pyproject.toml")
    targets = [project_root / "dist", project_root / "build"]
    root = config.output_root
    if root.is_dir():
        targets += [
            p
            for p in root.iterdir()
            if p.name.startswith(".") and p.name.endswith((".staging", ".download", ".previous"))
        ]
        targets += [p for p in root.rglob("*.tmp")] + [p for p in root.rglob("*.incomplete")]
        if with_profile:
            targets += [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if config.tiktoken_cache.is_dir():
        targets += list(config.tiktoken_cache.glob(".*.tmp"))
    return [t for t in targets if t.exists()]


def result_table(outcomes: Sequence[StepOutcome], steps: Sequence[str], sizes: Mapping[str, int] | None = None) -> str:
    """A fixed-width table of every step: ran ones with time and result, the rest as not run."""
    by_step = {o.step: o for o in outcomes}
    rows = [("step", "time", "result")]
    for step in steps:
        outcome = by_step.get(step)
        if outcome is None:
            rows.append((step, "-", "not run"))
        else:
            rows.append((step, f"{outcome.seconds:.1f} s", outcome.result.splitlines()[0][:100]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"artifact {name}: {size / 2**20:.0f} MiB" for name, size in (sizes or {}).items()]
    return "\n".join(lines)
