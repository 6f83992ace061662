"""Both built artifacts in a hostile world: another user, an unreadable or junk override, wrong
weights in the override, and what a run leaves behind. Nothing may crash or serve wrong vectors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from devtools.demo_project import APP_NAME, ARTIFACT_SPEC, PROFILE_ID, Project
from devtools.fixture_model import FixtureSpec, fixture_files
from embedding_runtime.build_api import HTTP_CLIENTS, MARKER_NAME, STDLIB_ACCELERATORS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
NOBODY = 65534


@pytest.fixture(params=["pyinstaller", "nuitka"])
def artifact(request: pytest.FixtureRequest) -> Path:
    return Path(request.getfixturevalue(f"{request.param}_artifact"))


@pytest.fixture
def world(artifact: Path, artifact_project: Project) -> Iterator[Path]:
    """The artifact (hard links) in a folder every user can read, and a HOME owned by nobody."""
    root = Path(tempfile.mkdtemp(prefix="hostile-artifact-", dir="/tmp"))
    root.chmod(0o755)
    shutil.copytree(artifact, root / "app", copy_function=os.link, symlinks=True)
    home = root / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    yield root
    subprocess.run(["chmod", "-R", "u+rwx", str(root)], check=False)
    shutil.rmtree(root, ignore_errors=True)


def override_dir(world: Path) -> Path:
    return world / "home" / ".local" / "share" / APP_NAME / "embedding_models" / PROFILE_ID


def run_as_nobody(
    world: Path, *args: str, env: dict[str, str] | None = None, encoding: str = "utf-8"
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(world / "home"), **(env or {})}
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(world / "app" / APP_NAME)]
    return subprocess.run(
        [*command, *args], env=env, capture_output=True, encoding=encoding, errors="replace", timeout=300
    )


def plant_override(world: Path, artifact_project: Project, files: dict[str, bytes] | None = None) -> Path:
    folder = override_dir(world)
    shutil.copytree(artifact_project.profile, folder)
    for name, data in (files or {}).items():
        (folder / name).write_bytes(data)
    for path in (world / "home").rglob("*"):
        os.chown(path, NOBODY, NOBODY)
    return folder


@pytest.mark.parametrize("command", [["--self-check"], ["add", "a note"], ["search", "note"]])
def test_an_override_nobody_may_read_is_skipped_by_every_command(
    world: Path, artifact_project: Project, command: list[str]
) -> None:
    folder = plant_override(world, artifact_project)
    for path in [*folder.rglob("*"), folder]:
        path.chmod(0o000)
    result = run_as_nobody(world, *command)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    if command == ["--self-check"]:
        report = json.loads(result.stdout)
        assert report["folder"]["kind"] == "bundled"
        assert "Permission denied" in report["skipped"][0]["reason"]


def test_a_junk_marker_in_the_override_is_a_reason_not_a_crash(world: Path, artifact_project: Project) -> None:
    folder = plant_override(world, artifact_project)
    (folder / MARKER_NAME).write_text("[" * 100_000 + "]" * 100_000)
    result = run_as_nobody(world, "--self-check")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["folder"]["kind"] == "bundled" and MARKER_NAME in report["skipped"][0]["reason"]


def test_wrong_weights_in_the_override_never_serve(world: Path, artifact_project: Project) -> None:
    """Another model's int8 files with a marker that agrees: sizes and hashes pass, the canary does not."""
    other = fixture_files(FixtureSpec(seed=99, hidden=768, heads=12, ffn=768))
    folder = plant_override(world, artifact_project, {n: other[n] for n in other if "quantized" in n})
    consistent_marker(folder, revision="e" * 40)  # another pin: only the canary can tell
    report = self_check_refusing_override(world, "canary_mismatch")
    # The override's fp32 is intact: either it serves fp32, or the bundled int8 serves; never its int8.
    assert (report["folder"]["kind"], report["variant"]["chosen"]) != ("override", "int8")


def self_check_refusing_override(world: Path, reason: str) -> dict[str, Any]:
    """The self-check's report, once it has skipped the override with ``reason``."""
    result = run_as_nobody(world, "--self-check")
    assert result.returncode == 0, result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout)
    reasons = [s["reason"] for s in report["skipped"] if s["kind"] == "override"]
    assert any(r.startswith(reason) for r in reasons), reasons
    return report


def consistent_marker(folder: Path, revision: str | None = None) -> None:
    """Rewrite the override's marker to agree with the files planted in it (and name ``revision``)."""
    marker = json.loads((folder / MARKER_NAME).read_text())
    for name in marker["files"]:
        data = (folder / name).read_bytes()
        marker["files"][name].update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    if revision is not None:
        marker["revision"] = revision
    (folder / MARKER_NAME).write_text(json.dumps(marker))


def test_the_same_model_ten_percent_off_fails_the_calibrated_canary(world: Path, artifact_project: Project) -> None:
    """int8 files of the real model with 10 % noise, re-quantized, behind a consistent marker of their own
    pin: the absolute floor (0.80) would let them through; the build's own int8 figure does not."""
    noisy = fixture_files(replace(ARTIFACT_SPEC, noise=0.10))
    folder = plant_override(world, artifact_project, {n: noisy[n] for n in noisy if "quantized" in n})
    consistent_marker(folder, revision="f" * 40)
    report = self_check_refusing_override(world, "canary_mismatch")
    assert (report["folder"]["kind"], report["variant"]["chosen"]) != ("override", "int8")
    assert report["canary"]["int8_floor"] > 0.80, "the floor comes from the build's own int8 figure"


def test_an_override_claiming_the_bundled_pin_with_other_bytes_is_skipped_at_once(
    world: Path, artifact_project: Project
) -> None:
    other = fixture_files(replace(ARTIFACT_SPEC, seed=99))
    folder = plant_override(world, artifact_project, {n: other[n] for n in other if "quantized" in n})
    consistent_marker(folder)  # still the bundled repo and revision
    report = self_check_refusing_override(world, "forged_marker: it names the bundled model's pin")
    assert report["folder"]["kind"] == "bundled"


def test_an_app_data_folder_nobody_may_write_is_one_error_line(world: Path) -> None:
    (world / "home").chmod(0o555)
    result = run_as_nobody(world, "add", "a note")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("ERROR: cannot use ") and "Permission denied" in result.stderr


def test_a_run_writes_nothing_under_home_and_ships_no_http_client(world: Path) -> None:
    result = run_as_nobody(world, "--self-check")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert list((world / "home").rglob("*")) == [], "onnxruntime telemetry (or anything) wrote under HOME"
    assert report["http_clients"] == [], "an HTTP client ships in an app that makes no request"
    assert report["accelerators"] == dict.fromkeys(STDLIB_ACCELERATORS, True)
    assert set(HTTP_CLIENTS) >= {"requests", "urllib3"}


def test_the_artifact_serves_the_revision_it_was_built_from(world: Path, artifact_project: Project) -> None:
    result = run_as_nobody(world, "--self-check")
    report = json.loads(result.stdout)
    pin = artifact_project.target.pin
    assert report["folder"]["revision"] == pin.revision and report["folder"]["profile_id"] == pin.profile_id


# Nuitka's artifact honours PYTHONIOENCODING, so it can be given a Windows pipe's code page here;
# PyInstaller's ignores it (its Windows build meets a real cp1252 pipe in `nox -s windows-smoke`).
@pytest.mark.parametrize("artifact", ["nuitka"], indirect=True)
def test_a_cp1252_pipe_carries_the_self_check_and_notes_outside_its_code_page(world: Path) -> None:
    cp1252 = {"PYTHONIOENCODING": "cp1252"}
    checked = run_as_nobody(world, "--self-check", env=cp1252)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert json.loads(checked.stdout)["texts"][-1].startswith("你好"), "ASCII escapes parse back to the text"
    note = "数字 and Łódź: a note about the weather 🙂"
    assert run_as_nobody(world, "add", note).returncode == 0
    found = run_as_nobody(world, "search", "weather", env=cp1252, encoding="cp1252")
    assert found.returncode == 0 and "Traceback" not in found.stderr, found.stderr[-2000:]
    assert note.encode("cp1252", "backslashreplace").decode("cp1252") in found.stdout
