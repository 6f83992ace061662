"""Guards and the result table that the nox sessions use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from build_hooks.cli import sizes
from build_hooks.cli.clean import clean_targets
from build_hooks.config import load_config
from build_hooks.freezing.target import target_for
from build_hooks.pipeline_steps import StepOutcome, result_table
from tests.support import REPO_ROOT

STEPS = ["prepare-model", "warm-tiktoken", "build-nuitka"]


def test_result_table_lists_every_step_with_what_happened() -> None:
    table = result_table(
        [StepOutcome("prepare-model", 1.234, "ok"), StepOutcome("warm-tiktoken", 0.5, "FAILED: no cache\ndetail")],
        STEPS,
    )
    lines = table.splitlines()
    assert lines[0].split() == ["step", "time", "result"]
    assert lines[2].split() == ["prepare-model", "1.2", "s", "ok"]
    assert lines[3].split()[:4] == ["warm-tiktoken", "0.5", "s", "FAILED:"] and "detail" not in table
    assert lines[4].split() == ["build-nuitka", "-", "not", "run"]


def _project(tmp_path: Path) -> Path:
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_clean_removes_builds_and_leftovers_but_keeps_the_profile(tmp_path: Path) -> None:
    root = _project(tmp_path)
    models = root / "data" / "embedding_models"
    keep = [models / "local-text-retrieval-v1" / "tokenizer.json", root / "data" / "tiktoken_cache" / "x"]
    drop = [
        root / "dist" / "nuitka" / "a",
        root / "build" / "pyinstaller" / "b",
        models / ".local-text-retrieval-v1.staging" / "c",
        models / ".local-text-retrieval-v1.download" / "d",
        models / "local-text-retrieval-v1" / "onnx" / "half.tmp",
    ]
    for path in keep + drop:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    targets = clean_targets(root)
    assert {t.relative_to(root).parts[:3] for t in targets} >= {("dist",), ("build",)}
    assert all(not any(k.is_relative_to(t) for k in keep) for t in targets)
    assert models / ".local-text-retrieval-v1.staging" in targets
    assert models / "local-text-retrieval-v1" / "onnx" / "half.tmp" in targets
    assert models / "local-text-retrieval-v1" in clean_targets(root, with_profile=True)


def test_the_sizes_command_reports_each_builders_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = target_for(load_config(_project(tmp_path) / "pyproject.toml"), env={})
    nuitka, pyinstaller = target.dist_dir("nuitka"), target.dist_dir("pyinstaller")
    nuitka.mkdir(parents=True)
    (nuitka / "bin").write_bytes(b"x" * 10)
    pyinstaller.mkdir(parents=True)
    pyinstaller.with_name(pyinstaller.name + ".SHA256SUMS").write_text("not an artifact")
    monkeypatch.chdir(tmp_path)
    assert sizes.main([]) == 0
    assert json.loads(capsys.readouterr().out) == {f"nuitka/{nuitka.name}": 10, f"pyinstaller/{pyinstaller.name}": 0}
