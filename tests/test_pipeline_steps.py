"""Guards and the result table that the nox sessions use."""

from __future__ import annotations

import shutil
from pathlib import Path

from build_hooks.pipeline_steps import StepOutcome, missing_profile_problem, result_table
from embedding_runtime.layout import MARKER_NAME
from tests.conftest import REPO_ROOT

STEPS = ["prepare-model", "warm-tiktoken", "build-nuitka"]


def _project(tmp_path: Path) -> Path:
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


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


def test_unprepared_profile_names_the_step_to_run(tmp_path: Path) -> None:
    problem = missing_profile_problem(_project(tmp_path))
    assert problem is not None and "run `nox -s prepare-model` first" in problem


def test_profile_of_another_pin_must_be_prepared_again(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    import hashlib
    import json

    root = _project(tmp_path)
    profile = root / "data" / "embedding_models" / "local-text-retrieval-v1"
    files = ("tokenizer.json", "onnx/model.onnx", "onnx/model.onnx_data")
    for name in files:
        (profile / name).parent.mkdir(parents=True, exist_ok=True)
        (profile / name).write_bytes(repo_files_a[name])
    marker = {
        "schema": 1,
        "profile_id": "local-text-retrieval-v1",
        "repo": "acme/other",
        "revision": "d" * 40,
        "variants": ["fp32"],
        "files": {
            n: {"size": len(repo_files_a[n]), "sha256": hashlib.sha256(repo_files_a[n]).hexdigest(), "mtime_ns": 1}
            for n in files
        },
    }
    (profile / MARKER_NAME).write_text(json.dumps(marker))
    problem = missing_profile_problem(root)
    assert problem is not None and "acme/other@dddddddddddd" in problem and "again" in problem
