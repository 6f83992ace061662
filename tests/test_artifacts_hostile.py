"""Both built artifacts in a hostile world: another user, an unreadable or junk override, wrong
weights in the override, and what a run leaves behind. Nothing may crash or serve wrong vectors."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import hashlib
import itertools
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from devtools.demo_project import APP_NAME, ARTIFACT_SPEC, PROFILE_ID, Project
from devtools.fixture_model import FixtureSpec, fixture_files
from embedding_runtime.build_api import HTTP_CLIENTS, MARKER_NAME, STDLIB_ACCELERATORS
from tests.support import tmpfs

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


def relaid_override(world: Path, artifact_project: Project) -> Path:
    """An override of the same model in other bytes (tokenizer.json laid out anew, the same tokens; a
    marker of its own pin): it must prove itself in full, once."""
    tokenizer = artifact_project.profile / "tokenizer.json"
    relaid = json.dumps(json.loads(tokenizer.read_text(encoding="utf-8")), indent=1).encode()
    folder = plant_override(world, artifact_project, {"tokenizer.json": relaid})
    consistent_marker(folder, revision="f" * 40)
    return folder


def test_the_bundled_bytes_need_one_text_and_other_bytes_the_whole_canary_once(
    world: Path, artifact_project: Project
) -> None:
    """The bundled copy holds the very bytes its probe record was made from: one probe text proves this CPU
    computes them, at every launch. Other bytes (an override) are proven in full once, then re-proven with
    one text; weights 10 % off planted afterwards are other bytes again: the whole canary, refused."""
    debug = {"EMBEDDING_RUNTIME_LOG": "debug"}
    first = run_as_nobody(world, "add", "the first note", env=debug)
    assert first.returncode == 0 and "[int8]: canary identical (1 probe text): passed" in first.stderr, first.stderr
    proven = world / "home" / ".local" / "share" / APP_NAME / ".embedding-runtime" / "proven.json"
    assert not proven.exists(), "nothing to remember: the build proved these bytes"
    folder = relaid_override(world, artifact_project)
    second = run_as_nobody(world, "add", "the second note", env=debug)
    assert second.returncode == 0 and f"{folder} [int8]: canary full (12 probe texts): passed" in second.stderr
    assert proven.stat().st_uid == NOBODY and len(json.loads(proven.read_text())["proven"]) == 1
    third = run_as_nobody(world, "add", "the third note", env=debug)
    assert third.returncode == 0 and f"{folder} [int8]: canary remembered (1 probe text): passed" in third.stderr
    noisy = fixture_files(replace(ARTIFACT_SPEC, noise=0.10))
    for name in (n for n in noisy if "quantized" in n):
        (folder / name).write_bytes(noisy[name])
    consistent_marker(folder, revision="f" * 40)
    fourth = run_as_nobody(world, "add", "the fourth note", env=debug)
    assert fourth.returncode == 0, fourth.stderr[-2000:]
    assert f"{folder} [int8]: canary full (12 probe texts): canary_mismatch" in fourth.stderr, fourth.stderr[-3000:]
    assert "canary identical (1 probe text): passed" in fourth.stderr, "the bundled copy serves"


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
    assert result.stderr.startswith("ERROR: cannot write in ") and "Permission denied" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


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


# -- issue 25: a user's folder, notes and keystrokes -------------------------------------------------


def notes_file(world: Path) -> Path:
    return world / "home" / ".local" / "share" / APP_NAME / "notes.json"


def as_nobody(*paths: Path) -> None:
    for path in paths:
        os.chown(path, NOBODY, NOBODY)


def test_a_fifo_for_the_overrides_marker_is_a_reason_and_nothing_waits(world: Path, artifact_project: Project) -> None:
    """Opening a named pipe for reading blocks until a writer comes: a folder is only ever looked at."""
    folder = plant_override(world, artifact_project)
    (folder / MARKER_NAME).unlink()
    os.mkfifo(folder / MARKER_NAME)
    as_nobody(folder / MARKER_NAME)
    report = self_check_refusing_override(world, f"{MARKER_NAME} is not a regular file")
    assert report["folder"]["kind"] == "bundled"
    added = run_as_nobody(world, "add", "a note past the pipe")
    assert added.returncode == 0 and added.stderr == "", added.stderr[-2000:]


def test_an_override_whose_weights_do_not_load_is_skipped_and_the_bundle_serves(
    world: Path, artifact_project: Project
) -> None:
    """The sidecars replaced by same-size bytes, mtimes kept (the marker agrees): the model computes
    NaN or garbage. Skipped like a failed canary; the intact bundled copy serves."""
    folder = plant_override(world, artifact_project)
    for sidecar in sorted((folder / "onnx").glob("*.onnx_data")):
        st = sidecar.stat()
        sidecar.write_bytes(b"\xff" * st.st_size)
        os.utime(sidecar, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = run_as_nobody(world, "--self-check")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["ok"] and report["folder"]["kind"] == "bundled", report["skipped"]
    reasons = [s["reason"] for s in report["skipped"] if s["kind"] == "override"]
    assert any(r.startswith("load_failed: ") and "NaN" in r for r in reasons), reasons
    assert run_as_nobody(world, "add", "a note").returncode == 0


def test_eight_windows_adding_at_once_keep_eight_notes(world: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(world / "home")}
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(world / "app" / APP_NAME)]
    writers = [
        subprocess.Popen([*command, "add", f"note {n} from window {n}"], env=env, stderr=subprocess.PIPE, text=True)
        for n in range(8)
    ]
    errors = [writer.communicate(timeout=300)[1] for writer in writers]
    outcomes = [(writer.returncode, err) for writer, err in zip(writers, errors, strict=True)]
    assert outcomes == [(0, "")] * 8, outcomes
    texts = sorted(note["text"] for note in json.loads(notes_file(world).read_text()))
    assert texts == sorted(f"note {n} from window {n}" for n in range(8))
    assert not list(notes_file(world).parent.glob("*.tmp")), "a temp file was left behind"


@pytest.mark.parametrize(
    "damage",
    [b"garbage", b"{}", b"[1,2,3]", b'[{"text": "x"}]', b'[{"text": "x", "stamp": 5, "vector": ""}]', b"\xff\xfe"],
)
def test_a_damaged_notes_file_is_set_aside_with_one_line_never_overwritten(world: Path, damage: bytes) -> None:
    notes = notes_file(world)
    notes.parent.mkdir(parents=True)
    notes.write_bytes(damage)
    as_nobody(*(world / "home").rglob("*"))
    searched = run_as_nobody(world, "search", "weather")
    assert searched.returncode == 0 and searched.stdout == "", searched.stderr[-2000:]
    line = searched.stderr.strip()
    assert "\n" not in line and "could not be read as notes" in line and "Traceback" not in line, line
    aside = sorted(notes.parent.glob("notes.json.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damage and str(aside[0]) in line
    added = run_as_nobody(world, "add", "a note about the weather")
    assert added.returncode == 0 and added.stderr == "", added.stderr
    assert [n["text"] for n in json.loads(notes.read_text())] == ["a note about the weather"]
    assert aside[0].read_bytes() == damage, "the damaged file is kept as it was"


@pytest.mark.parametrize("vector", ["not base64!", "AAAA"])
def test_a_note_with_a_damaged_vector_is_embedded_again_and_kept(world: Path, vector: str) -> None:
    assert run_as_nobody(world, "add", "a note about the weather").returncode == 0
    notes = json.loads(notes_file(world).read_text())
    notes.append({"text": "rain is coming tomorrow", "stamp": notes[0]["stamp"], "vector": vector})
    notes_file(world).write_text(json.dumps(notes))
    found = run_as_nobody(world, "search", "rain", "-k", "2")
    assert found.returncode == 0 and "Traceback" not in found.stderr, found.stderr[-2000:]
    assert "rain is coming tomorrow" in found.stdout
    saved = json.loads(notes_file(world).read_text())
    assert [n["text"] for n in saved] == ["a note about the weather", "rain is coming tomorrow"]
    assert saved[1]["vector"] != vector and saved[1]["vector"].strip() != ""


def test_stale_notes_are_embedded_again_once_and_saved(world: Path) -> None:
    assert run_as_nobody(world, "add", "a fresh note").returncode == 0
    stamp = json.loads(notes_file(world).read_text())[0]["stamp"]
    stale = [
        {"text": f"old note {n}", "stamp": "another-model-v9-384d-int8-mlen512-in1", "vector": "AAAA"}
        for n in range(40)
    ]
    notes_file(world).write_text(json.dumps(json.loads(notes_file(world).read_text()) + stale))
    assert run_as_nobody(world, "search", "old note").returncode == 0
    after_first = notes_file(world).read_bytes()
    assert {n["stamp"] for n in json.loads(after_first)} == {stamp}, "every stale vector was saved anew"
    assert run_as_nobody(world, "search", "old note").returncode == 0
    assert notes_file(world).read_bytes() == after_first, "nothing left to re-embed: the file is not rewritten"


def test_a_full_disk_is_one_line_and_leaves_the_notes_and_no_temp_file(world: Path) -> None:
    data = world / "data"
    data.mkdir()
    with tmpfs(data, "64k", f"uid={NOBODY}", f"gid={NOBODY}") as disk:
        env = {"XDG_DATA_HOME": str(disk)}
        assert run_as_nobody(world, "add", "the first note", env=env).returncode == 0
        notes = disk / APP_NAME / "notes.json"
        kept = notes.read_bytes()
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        added = run_as_nobody(world, "add", "a note that does not fit " * 50, env=env)
        assert added.returncode == 1 and "Traceback" not in added.stderr, added.stderr[-2000:]
        assert added.stderr.startswith("ERROR: no space left on the disk holding ") and added.stderr.count("\n") == 1
        assert notes.read_bytes() == kept
        left = sorted(p.relative_to(notes.parent).as_posix() for p in notes.parent.rglob("*"))
        # The bundled bytes are the probe record's own, so nothing was noted; the failed add left no temp file.
        assert left == ["notes.json", "notes.json.lock"]


def test_a_thread_setting_past_the_cpus_is_lowered_and_said(world: Path) -> None:
    env = {"EMBEDDING_RUNTIME_THREADS": "100000"}
    result = subprocess.run(
        ["taskset", "-c", "0", "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         str(world / "app" / APP_NAME), "--self-check"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(world / "home"), **env},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    threads = json.loads(result.stdout)["threads"]
    assert threads["count"] == 1 and "lowered to the 1 CPUs this process may use" in threads["reason"], threads


@pytest.mark.parametrize(
    "setting",
    ["PYTHONIOENCODING=ascii", "PYTHONINSPECT=1", "PYTHONWARNINGS=error", "PYTHONOPTIMIZE=2",
     "PYTHONHASHSEED=7", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"],
)  # fmt: skip
def test_a_users_python_settings_change_nothing(world: Path, setting: str) -> None:
    """PyInstaller's program ignores PYTHON* variables; Nuitka's honours them: either way, the same
    answers and no traceback. (PYTHONMALLOC=debug and PYTHONDEVMODE=1 crash Nuitka's program before
    any of its code runs: see the README.)"""
    assert run_as_nobody(world, "add", "café ☕ 数字 and a note about the weather").returncode == 0
    name, value = setting.split("=")
    plain = run_as_nobody(world, "search", "weather")
    for command in (["search", "weather"], ["--help"], ["search"]):
        with_setting = run_as_nobody(world, *command, env={name: value})
        without = plain if command == ["search", "weather"] else run_as_nobody(world, *command)
        assert "Traceback" not in with_setting.stderr, with_setting.stderr[-2000:]
        assert with_setting.returncode == without.returncode, (command, with_setting.stderr[-2000:])
        if name != "PYTHONIOENCODING":
            assert (with_setting.stdout, with_setting.stderr) == (without.stdout, without.stderr), command
    readable = run_as_nobody(world, "search", "weather", env={name: value})
    assert "weather" in readable.stdout


def test_ctrl_c_at_any_moment_of_start_up_is_one_line(world: Path) -> None:
    """From the moment the app's code runs (seen from outside: the process maps numpy's library,
    which the launcher imports right after setting its Ctrl-C handler), Ctrl-C at a spread of
    moments: "ERROR: interrupted" and 130, or the command had already finished. Never a traceback,
    never a crash (a KeyboardInterrupt inside onnxruntime's native start-up aborted the program),
    never a half-written note."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(world / "home")}
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(world / "app" / APP_NAME)]
    outcomes = []
    for delay in (0.0, 0.01, 0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.3, 0.5):
        child = subprocess.Popen([*command, "add", "a note"], env=env, stderr=subprocess.PIPE, text=True)
        maps = Path(f"/proc/{child.pid}/maps")
        deadline = time.monotonic() + 120
        while "_multiarray_umath" not in maps.read_text() and child.poll() is None:
            assert time.monotonic() < deadline, "the app never loaded numpy"
            time.sleep(0.001)
        time.sleep(delay)  # fixed delays from an event, as wide as start-up itself
        child.send_signal(signal.SIGINT)
        err = child.communicate(timeout=120)[1]
        outcome = (child.returncode, err)
        assert outcome in ((130, "ERROR: interrupted\n"), (0, "")), (delay, outcome)
        outcomes.append(outcome[0])
        if notes_file(world).exists():  # replaced in one step: whole notes, or none yet
            assert all(n["text"] == "a note" for n in json.loads(notes_file(world).read_text()))
    assert 130 in outcomes, f"no Ctrl-C landed while the app was starting: {outcomes}"
    assert run_as_nobody(world, "add", "a last note").returncode == 0
    assert not list(notes_file(world).parent.glob("*.tmp")), "a temp file left by a Ctrl-C outlived the next write"


# -- issue 33: the canary's memory trusts bytes; no note lost, no traceback ------------------------------------

_IN_CLOSE_WRITE, _IN_CLOSE_NOWRITE, _IN_OPEN = 0x008, 0x010, 0x020


@contextlib.contextmanager
def watching_opens(folder: Path, event: int = _IN_OPEN) -> Iterator[Callable[[str, int, float], bool]]:
    """inotify on ``folder``: ``opened(name, times, timeout)`` waits until processes have opened that file
    ``times`` times (or, with ``event=_IN_CLOSE_WRITE``, closed it after writing; the kernel reports each
    as it happens), ``False`` if not in time. Opens and closes are all watched: the kernel merges two
    identical events in a row, and an open, a close and an open are not."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    assert libc.inotify_add_watch(fd, str(folder).encode(), _IN_OPEN | _IN_CLOSE_NOWRITE | _IN_CLOSE_WRITE) >= 0
    seen: collections.Counter[str] = collections.Counter()

    def opened(name: str, times: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while seen[name] < times and (left := deadline - time.monotonic()) > 0:
            if not select.select([fd], [], [], left)[0]:
                break
            data = os.read(fd, 65536)
            while data:
                _wd, mask, _cookie, length = struct.unpack_from("iIII", data)
                if mask & event:
                    seen[data[16 : 16 + length].rstrip(b"\0").decode()] += 1
                data = data[16 + length :]
        return seen[name] >= times

    try:
        yield opened
    finally:
        os.close(fd)


def noisy_int8(noise: float) -> dict[str, bytes]:
    """The bundled model's int8 files with ``noise`` in its weights, re-quantized: the same sizes. At 5 %
    the shortest probe text still agrees (0.99), twelve do not (0.88 against a floor of 0.96)."""
    files = fixture_files(replace(ARTIFACT_SPEC, noise=noise))
    return {name: data for name, data in files.items() if "quantized" in name}


def test_files_swapped_while_the_model_loads_are_never_remembered_as_proven(
    world: Path, artifact_project: Project
) -> None:
    """The override's int8 files (and its marker) swapped for 5 %-noisy ones of the same size the moment the
    app has loaded the right ones, before it notes its proof: the next launch must prove them in full,
    and refuse them, not re-prove them with the one probe text they pass."""
    folder = relaid_override(world, artifact_project)
    proven = world / "home" / ".local" / "share" / APP_NAME / ".embedding-runtime" / "proven.json"
    swap = world / "swap"
    swap.mkdir()
    for name, data in noisy_int8(0.05).items():
        (swap / Path(name).name).write_bytes(data)
    sidecar = folder / "onnx" / "model_quantized.onnx_data"
    assert (swap / sidecar.name).stat().st_size == sidecar.stat().st_size
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(world / "home"),
        "EMBEDDING_RUNTIME_LOG": "debug",
    }
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(world / "app" / APP_NAME)]
    with (
        watching_opens(sidecar.parent) as opened,
        subprocess.Popen([*command, "add", "a note"], env=env, stderr=subprocess.PIPE, text=True) as child,
    ):
        # Each once to check the folder (is it readable?), then to load it: stopped once the load has both.
        for name in ("model_quantized.onnx", "model_quantized.onnx_data"):
            assert opened(name, 2, 120), f"the app never loaded the override's {name}"
        child.send_signal(signal.SIGSTOP)  # between its load and its note of the proof
        noted_before_swap = proven.exists()
        for name in ("model_quantized.onnx", "model_quantized.onnx_data"):
            (swap / name).replace(folder / "onnx" / name)
        consistent_marker(folder, revision="f" * 40)  # the marker made to agree: only the canary can tell
        child.send_signal(signal.SIGCONT)
        first = child.communicate(timeout=300)[1]
    assert not noted_before_swap, "the proof was noted before the swap: the race was not run"
    # The right bytes were loaded: they serve, or (their marker now says other bytes) the bundled copy does.
    assert child.returncode == 0, first[-2000:]
    second = run_as_nobody(world, "add", "another note", env={"EMBEDDING_RUNTIME_LOG": "debug"})
    assert second.returncode == 0, second.stderr[-2000:]
    override = [line for line in second.stderr.splitlines() if f"{folder} [int8]: canary" in line]
    assert override and "canary full (12 probe texts): canary_mismatch" in override[0], second.stderr[-3000:]
    assert f"loaded {folder}" not in second.stderr, "the swapped weights served"


def test_a_long_renewal_shows_its_progress_and_a_ctrl_c_keeps_what_was_saved(world: Path) -> None:
    """200,000 notes of another model (minutes of work on any CPU): on a terminal, the progress shows;
    the first save comes 10 s in, as an append to the journal; a Ctrl-C then ends the program with one
    line, and what was saved stays saved: the next run folds it in and does not make it again."""
    assert run_as_nobody(world, "add", "a fresh note").returncode == 0
    notes = notes_file(world)
    fresh = json.loads(notes.read_text())
    stale = [{"text": f"old note {n}", "stamp": "another-model-v9-384d-int8-mlen512-in1", "vector": "AAAA"}
             for n in range(200_000)]  # fmt: skip
    notes.write_text(json.dumps(fresh + stale))
    journal = notes.with_name(notes.name + ".renewed")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(world / "home")}
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(world / "app" / APP_NAME)]
    master, terminal = os.openpty()
    shown = bytearray()
    reader = threading.Thread(target=_drain, args=(master, shown), daemon=True)  # a full terminal would stop it
    reader.start()
    try:
        with (
            watching_opens(notes.parent, _IN_CLOSE_WRITE) as closed,
            subprocess.Popen([*command, "search", "old note"], env=env, stdout=subprocess.DEVNULL, stderr=terminal)
            as child,
        ):  # fmt: skip
            os.close(terminal)
            assert closed(journal.name, 1, 300), "no save in the journal"
            child.send_signal(signal.SIGINT)
            child.wait(timeout=120)
        reader.join(timeout=60)
    finally:
        os.close(master)
    said = shown.decode(errors="replace")
    assert child.returncode == 130 and said.rstrip().endswith("ERROR: interrupted"), said[-2000:]
    assert re.search(r"embedding notes made with another model again: [\d,]+ of 200,000, about \d+ s left", said)
    assert "Traceback" not in said
    saved = json.loads(notes.read_text())
    assert saved == fresh + stale, "notes.json is only appended to beside, never rewritten halfway"
    lines = [json.loads(line) for line in journal.read_bytes().splitlines()]
    assert len(lines) >= 256 and {line["stamp"] for line in lines} == {fresh[0]["stamp"]}
    # The saved part, and only it, is left stale no more: the next run has nothing else to make.
    kept = {_note_identity(note) for note in stale[: len(lines)]}
    assert {line["replaces"] for line in lines} == kept, "the journal names the notes it replaces"
    notes.write_text(json.dumps(fresh + stale[: len(lines)]))
    as_nobody(notes)
    again = run_as_nobody(world, "search", "old note", env={"EMBEDDING_RUNTIME_LOG": "info"})
    assert again.returncode == 0, again.stderr[-2000:]
    folded = json.loads(notes.read_text())
    assert [n["vector"] for n in folded[1:]] == [line["vector"] for line in lines], "folded in, not made again"
    assert not journal.exists(), "folded into notes.json and removed"


def _drain(fd: int, into: bytearray) -> None:
    with contextlib.suppress(OSError):  # EIO once the last writer is gone
        while chunk := os.read(fd, 65536):
            into += chunk


def _note_identity(note: dict[str, str]) -> str:
    """As the launcher names a note in its journal: sha256 of [text, stamp, vector] as JSON."""
    return hashlib.sha256(json.dumps([note["text"], note["stamp"], note["vector"]]).encode()).hexdigest()


def test_notes_json_that_is_a_folder_is_set_aside_with_one_line(world: Path) -> None:
    notes = notes_file(world)
    (notes / "keep.txt").parent.mkdir(parents=True)
    (notes / "keep.txt").write_text("mine")
    as_nobody(*(world / "home").rglob("*"))
    searched = run_as_nobody(world, "search", "weather")
    assert searched.returncode == 0 and "Traceback" not in searched.stderr, searched.stderr[-2000:]
    assert searched.stderr.count("\n") == 1 and "(a folder, not a file)" in searched.stderr, searched.stderr
    assert run_as_nobody(world, "add", "a note").returncode == 0
    aside = list(notes.parent.glob("notes.json.damaged-*"))
    assert len(aside) == 1 and (aside[0] / "keep.txt").read_text() == "mine", "the folder is kept, renamed"


def test_a_disk_out_of_inodes_is_one_line_and_leaves_the_notes(world: Path) -> None:
    data = world / "data"
    data.mkdir()
    with tmpfs(data, "16m", "nr_inodes=64", f"uid={NOBODY}", f"gid={NOBODY}") as disk:
        env = {"XDG_DATA_HOME": str(disk)}
        assert run_as_nobody(world, "add", "the first note", env=env).returncode == 0
        notes = disk / APP_NAME / "notes.json"
        kept = notes.read_bytes()
        for n in itertools.count():  # every inode taken, plenty of space left
            try:
                (disk / f"inode-{n}").touch()
            except OSError:
                break
        added = run_as_nobody(world, "add", "a note that needs a temp file", env=env)
        assert added.returncode == 1 and "Traceback" not in added.stderr, added.stderr[-2000:]
        assert added.stderr.startswith("ERROR: no space left on the disk holding "), added.stderr
        assert added.stderr.count("\n") == 1 and notes.read_bytes() == kept
        assert not list(notes.parent.glob("*.tmp"))


def test_a_notes_folder_made_read_only_after_first_use_is_one_line(world: Path) -> None:
    assert run_as_nobody(world, "add", "the first note").returncode == 0
    folder = notes_file(world).parent
    kept = notes_file(world).read_bytes()
    folder.chmod(0o555)
    added = run_as_nobody(world, "add", "a second note")
    assert added.returncode == 1 and "Traceback" not in added.stderr, added.stderr[-2000:]
    assert added.stderr == f"ERROR: cannot write in {folder} (Permission denied); check the folder's permissions\n"
    assert notes_file(world).read_bytes() == kept
    found = run_as_nobody(world, "search", "first")
    assert found.returncode == 0 and "the first note" in found.stdout, found.stderr


@pytest.mark.parametrize(("home", "said"), [("", "HOME is empty"), ("relative/home", "HOME is a relative path")])
def test_a_home_that_names_no_folder_is_refused_with_one_line_naming_it(world: Path, home: str, said: str) -> None:
    """Not /.local/share/local-notes, not a folder wherever the app was started: one line, nothing written."""
    added = run_as_nobody(world, "add", "a note", env={"HOME": home})
    assert added.returncode == 1 and "Traceback" not in added.stderr, added.stderr[-2000:]
    assert added.stderr.startswith(f"ERROR: cannot tell where {APP_NAME} keeps its data: {said}"), added.stderr
    assert added.stderr.count("\n") == 1
    checked = run_as_nobody(world, "--self-check", env={"HOME": home})
    assert checked.returncode == 0, checked.stderr[-2000:]  # the bundled copy serves; nothing is remembered
    report = json.loads(checked.stdout)
    assert report["app_data"]["folder"] is None and said in report["app_data"]["problem"]
    assert [s["kind"] for s in report["skipped"]] == [], "no override folder is looked for"


def test_output_that_cannot_be_written_is_an_error(world: Path) -> None:
    assert run_as_nobody(world, "add", "a note about the weather").returncode == 0
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(world / "home")}
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(world / "app" / APP_NAME)]
    with open("/dev/full", "w") as full:  # noqa: PTH123 - a device
        result = subprocess.run(
            [*command, "search", "weather"], env=env, stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr == "ERROR: the output could not be written (No space left on device)\n"
    closed = subprocess.run([*command, "search", "weather"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, pass_fds=(), preexec_fn=lambda: os.close(1))  # fmt: skip
    assert closed.returncode == 1 and "no standard output" in closed.stderr, closed.stderr


def test_settings_the_runtime_does_not_understand_are_said_and_a_library_prints_nothing(world: Path) -> None:
    env = {"EMBEDDING_RUNTIME_DISABLE": "maybe", "EMBEDDING_RUNTIME_LOG": "trace"}
    checked = run_as_nobody(world, "--self-check", env=env)
    settings = json.loads(checked.stdout)["settings"]
    assert settings == [
        "EMBEDDING_RUNTIME_DISABLE='maybe' is not on (1, true, yes, on) or off (0, false, no, off): ignored",
        "EMBEDDING_RUNTIME_LOG='trace' is not one of debug, info, warning, error: ignored",
    ]
    added = run_as_nobody(world, "add", "a note", env=env)
    assert added.returncode == 0 and added.stderr == "", "the runtime printed by itself: " + added.stderr
    disabled = run_as_nobody(world, "add", "a note", env={"EMBEDDING_RUNTIME_DISABLE": "yes"})
    assert disabled.returncode == 1 and disabled.stderr.count("\n") == 1, disabled.stderr
    assert "embeddings are disabled (disabled_by_env)" in disabled.stderr


def test_a_frozen_apps_user_is_never_told_to_run_the_build_suite(world: Path) -> None:
    data = world / "app" / ("_internal" if (world / "app" / "_internal").is_dir() else "") / "data" / "embedding_models"
    shutil.rmtree(data)
    checked = run_as_nobody(world, "--self-check")
    problems = json.loads(checked.stdout)["problems"]
    assert checked.returncode == 1 and problems and "reinstall the app" in problems[0], problems
    assert not any("embedding-pipeline" in problem for problem in problems), problems


@pytest.mark.parametrize("artifact", ["nuitka"], indirect=True)
def test_ctrl_c_in_the_programs_first_150_ms_never_crashes_it(world: Path) -> None:
    """300 SIGINTs spread over the first 150 ms of Nuitka's program, from its exec: Nuitka's own start-up
    aborted (SIGABRT, "hard import of 'os'") or crashed (SIGSEGV) on a KeyboardInterrupt before. Each run
    ends with the one line and 130, or is ended by the signal itself before the program's first
    instruction (the kernel's default), or finished. The delays only spread the signals: every outcome
    below is accepted at any moment."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(world / "home")}
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(world / "app" / APP_NAME)]
    outcomes: collections.Counter[tuple[int, str]] = collections.Counter()
    for n in range(300):
        child = subprocess.Popen(
            [*command, "add", "a note"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(0.150 * n / 300)
        child.send_signal(signal.SIGINT)
        err = child.communicate(timeout=120)[1].decode(errors="replace")
        outcomes[(child.returncode, err)] += 1
    allowed = {(130, "ERROR: interrupted\n"), (-signal.SIGINT, ""), (0, "")}
    assert set(outcomes) <= allowed, outcomes
    assert outcomes[(130, "ERROR: interrupted\n")] > 200, outcomes
