"""A folder that passed the canary is re-proven with one probe text at the next launch, while the bytes it is
made from are the same; other bytes, a damaged note or an unwritable app folder cost only the whole canary."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from embedding_runtime import EmbeddingsDisabledError, EmbeddingService
from embedding_runtime._cpu import CpuFacts
from embedding_runtime._model_bytes import ModelBytes, ModelFileError
from embedding_runtime._probe import canary_problem
from embedding_runtime._proof_memo import memo_path, proof_key, remember
from embedding_runtime._records import read_json_record
from embedding_runtime.build_api import PROBE_TEXTS, ProbeRecord
from tests.runtime_fixtures import FIXTURE_PROFILE, write_profile
from tests.test_runtime_canary import FLOOR, scrambled

VNNI = CpuFacts("x86_64", frozenset({"AVX2", "AVX512VNNI"}), "GenuineIntel", 6, 106, "Xeon")
APP = "memo-app"


@pytest.fixture
def project(tmp_path: Path, repo_files_a: dict[str, bytes]) -> Path:
    """An app's project folder with the prepared profile under data/ (the source root)."""
    write_profile(tmp_path / "project" / "data" / "embedding_models", repo_files_a)
    return tmp_path / "project"


@pytest.fixture
def record(project: Path) -> ProbeRecord:
    fp32 = app_service(project, None, variant="fp32").embed_documents(list(PROBE_TEXTS))
    return ProbeRecord(FIXTURE_PROFILE.profile_id, PROBE_TEXTS, fp32, FLOOR)


def app_service(
    project: Path, record: ProbeRecord | None, *, variant: str = "int8", cpu: CpuFacts = VNNI, remember: bool = True
) -> EmbeddingService:
    """A service as an app makes it: the default roots (its data folder, then the project's data/)."""
    env = {"XDG_DATA_HOME": str(project.parent / "user-data"), "EMBEDDING_RUNTIME_VARIANT": variant}
    return EmbeddingService(
        FIXTURE_PROFILE,
        app_name=APP,
        source_root=project,
        env=env,
        cpu=cpu,
        probe_record=record,
        remember_proofs=remember,
    )


def memo(project: Path) -> Path:
    return memo_path(project.parent / "user-data" / APP)


def canary(service: EmbeddingService) -> dict[str, object]:
    service.load()
    report: dict[str, object] = service.explain()["canary"]
    return report


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file of a profile folder but its marker, by path in it."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def model_file(project: Path) -> Path:
    return project / "data" / "embedding_models" / FIXTURE_PROFILE.profile_id / "onnx" / "model_quantized.onnx"


def test_a_proven_folder_is_reproven_with_one_text_until_its_bytes_change(project: Path, record: ProbeRecord) -> None:
    first = app_service(project, record)
    assert canary(first) == canary(first) | {"state": "proven", "proof": "full", "texts": len(PROBE_TEXTS)}
    assert json.loads(memo(project).read_text())["schema"] == 1
    later = app_service(project, record)
    assert canary(later) | {"seconds": None} == canary(first) | {"seconds": None, "proof": "remembered", "texts": 1}
    np.testing.assert_array_equal(later.embed_documents(["a note"]), first.embed_documents(["a note"]))
    # The same bytes written again (a copy, a restore): the proof is of bytes, so it stands.
    model_file(project).write_bytes(model_file(project).read_bytes())
    assert canary(app_service(project, record))["proof"] == "remembered"
    # Other bytes that tokenize the same (tokenizer.json laid out anew, its marker made again):
    # the whole canary again, then remembered.
    folder = model_file(project).parents[1]
    relaid = json.dumps(json.loads((folder / "tokenizer.json").read_text()), indent=1).encode()
    write_profile(folder.parent, {**files_of(folder), "tokenizer.json": relaid})
    assert canary(app_service(project, record))["proof"] == "full"
    assert canary(app_service(project, record))["proof"] == "remembered"


def test_a_note_is_of_this_cpu_these_versions_and_this_contract() -> None:
    """A key made under other facts is another key: a note from another CPU, onnxruntime or contract
    is not accepted."""
    digests = {"tokenizer.json": "a" * 64, "onnx/model_quantized.onnx": "b" * 64}
    facts: dict[str, object] = {"cpu": VNNI.to_json(), "onnxruntime": "1.32.0", "contract": {"dimension": 32}}
    key = proof_key(digests, facts)
    assert key is not None
    for other in ({"cpu": CpuFacts("x86_64", frozenset({"AVX2"}), "AuthenticAMD", 25, 1, "EPYC").to_json()},
                  {"onnxruntime": "1.31.0"}, {"contract": {"dimension": 64}}):  # fmt: skip
        assert proof_key(digests, {**facts, **other}) != key
    assert proof_key({**digests, "tokenizer.json": "c" * 64}, facts) != key


def test_other_weights_with_the_old_size_and_times_get_the_whole_canary(
    project: Path, record: ProbeRecord, repo_files_a: dict[str, bytes]
) -> None:
    """What a backup restore (or an attacker short of the app's data) does: the proof is of bytes, and
    these are others, so the whole canary runs and refuses them."""
    assert canary(app_service(project, record, variant="fp32"))["proof"] == "full"
    sidecar = model_file(project).with_name("model.onnx_data")  # raw weights: any seed has the same size
    before = sidecar.stat()
    # A restore of other weights, with a marker that agrees with them and the sidecar's times set back.
    write_profile(sidecar.parents[2], scrambled(repo_files_a, "fp32"))
    os.utime(sidecar, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (sidecar.stat().st_size, sidecar.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    service = app_service(project, record, variant="fp32")
    with pytest.raises(EmbeddingsDisabledError):  # fp32 was asked for, and the only fp32 is refused
        service.load()
    report = service.explain()
    reasons = [s["reason"] for s in report["resolution"]["skipped"] if s["variant"] == "fp32"]
    assert reasons[-1].startswith("canary_mismatch: fp32 probe vectors agree"), reasons
    assert report["canary"]["proof"] == "full"


def test_the_one_probe_text_still_catches_weights_that_do_not_compute(
    tmp_path: Path, record: ProbeRecord, repo_files_a: dict[str, bytes]
) -> None:
    write_profile(tmp_path / "other" / "data" / "embedding_models", scrambled(repo_files_a, "int8"))
    wrong = app_service(tmp_path / "other", None)
    shortest = record.shortest()
    assert len(shortest.texts) == 1 and shortest.texts[0] == min(PROBE_TEXTS, key=len)
    problem = canary_problem(shortest, "int8", lambda texts: wrong.embed_documents(list(texts)))
    assert problem is not None and problem.startswith("canary_mismatch"), problem


def test_the_proof_is_this_cpus_and_this_variants(project: Path, record: ProbeRecord) -> None:
    assert canary(app_service(project, record))["proof"] == "full"
    avx2 = CpuFacts("x86_64", frozenset({"AVX2"}), "AuthenticAMD", 25, 1, "EPYC")
    assert canary(app_service(project, record, cpu=avx2))["proof"] == "full"
    assert canary(app_service(project, record, variant="fp32"))["proof"] == "full"
    assert canary(app_service(project, record, cpu=avx2))["proof"] == "remembered"


@pytest.mark.parametrize("damage", ["garbage", "wrong shape", "huge", "fifo", "folder in its place"])
def test_a_damaged_note_costs_only_the_whole_canary(project: Path, record: ProbeRecord, damage: str) -> None:
    path = memo(project)
    path.parent.mkdir(parents=True)
    if damage == "garbage":
        path.write_bytes(b"\xff\x00not json")
    elif damage == "wrong shape":
        path.write_text(json.dumps({"schema": 1, "proven": {"a": 1}}))
    elif damage == "huge":
        path.write_text(json.dumps({"schema": 1, "proven": ["x" * 64] * 10_000}))
    elif damage == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    service = app_service(project, record)
    assert canary(service)["proof"] == "full" and service.embed_documents(["a note"]).shape == (1, 32)
    expected = "full" if damage == "folder in its place" else "remembered"  # the others were replaced
    assert canary(app_service(project, record))["proof"] == expected
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "a temp file was left"


def test_an_app_folder_where_nothing_can_be_noted_costs_only_the_whole_canary(
    project: Path, record: ProbeRecord
) -> None:
    """A file where the note's folder should be (as a read-only folder would, for another user)."""
    blocked = memo(project).parent
    blocked.parent.mkdir(parents=True)
    blocked.write_bytes(b"not a folder")
    for _ in range(2):
        assert canary(app_service(project, record))["proof"] == "full"
    assert sorted(p.name for p in blocked.parent.iterdir()) == [blocked.name]
    assert blocked.read_bytes() == b"not a folder"


def test_a_self_check_a_doctor_and_explicit_roots_remember_nothing(project: Path, record: ProbeRecord) -> None:
    assert canary(app_service(project, record, remember=False))["proof"] == "full"
    assert not (project.parent / "user-data").exists()
    assert canary(app_service(project, record, remember=False))["proof"] == "full"


def test_launches_noting_proofs_at_once_leave_a_readable_note(project: Path) -> None:
    path = memo(project)
    keys = [f"{i:064x}" for i in range(24)]
    threads = [threading.Thread(target=remember, args=(path, key)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = json.loads(path.read_text())["proven"]
    assert 1 <= len(kept) <= 16 and set(kept) <= set(keys)
    assert [p.name for p in path.parent.iterdir()] == ["proven.json"]


def test_the_load_reports_its_phases(project: Path, record: ProbeRecord) -> None:
    service = app_service(project, record)
    service.load()
    seconds = service.explain()["load_seconds"]
    assert set(seconds) == {"imports", "folders", "tokenizer", "session", "canary", "total"}
    assert min(seconds.values()) >= 0
    assert sum(v for k, v in seconds.items() if k != "total") == pytest.approx(seconds["total"], abs=0.001)


@pytest.mark.parametrize(("setting", "shown"), [("debug", True), ("INFO", False), ("", False), ("loud", False)])
def test_embedding_runtime_log_shows_the_load_on_stderr(
    project: Path, record: ProbeRecord, setting: str, shown: bool
) -> None:
    """The load's phases are a debug line; INFO shows the "loaded" line only; no level, no log."""
    code = (
        "import logging, sys; import embedding_runtime; "
        "log = logging.getLogger('embedding_runtime._service'); "
        "log.debug('load took total 0.1 s'); log.info('loaded x')"
    )
    env = {**os.environ, "EMBEDDING_RUNTIME_LOG": setting}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert ("load took total 0.1 s" in result.stderr) is shown
    assert ("loaded x" in result.stderr) is (setting.lower() in ("debug", "info"))
    assert result.stdout == ""


def test_a_record_reader_given_a_folder_says_so(tmp_path: Path) -> None:
    """A folder where a record should be (the note, a marker): a reason, not an IsADirectoryError."""
    (tmp_path / "record.json").mkdir()
    assert read_json_record(tmp_path / "record.json", 1024) == "record.json is not a regular file"


def test_the_bytes_a_record_was_made_from_need_one_probe_text_and_no_note(project: Path, record: ProbeRecord) -> None:
    """The bundled copy holds the very bytes its probe record names: only this CPU's word is left to
    prove, with the shortest text, at every launch; nothing is noted. A self-check proves it in full."""
    folder = model_file(project).parents[1]
    sources = {name: hashlib.sha256(data).hexdigest() for name, data in files_of(folder).items()}
    own = replace(record, sources=sources)
    for _ in range(2):
        assert canary(app_service(project, own)) | {"seconds": None} == {
            "state": "proven", "proof": "identical", "texts": 1, "seconds": None, "int8_floor": own.int8_floor,
        }  # fmt: skip
    assert not memo(project).exists()
    assert canary(app_service(project, own, remember=False))["proof"] == "full"
    other = replace(record, sources={**sources, "tokenizer.json": "0" * 64})
    assert canary(app_service(project, other))["proof"] == "full"


def test_a_process_started_on_windows_is_named_by_its_command_line() -> None:
    """subprocess.Popen's audit event carries no executable on Windows: the command line names it."""
    from embedding_runtime._self_check import ProcessWatch

    watch = ProcessWatch()
    watch("subprocess.Popen", (None, ["cmd", "/c", "ver"], None, None))
    watch("subprocess.Popen", ("/usr/bin/uname", ["uname", "-a"], None, None))
    assert watch.processes == ["subprocess.Popen ['cmd', '/c', 'ver']", "subprocess.Popen '/usr/bin/uname'"]


def test_the_bytes_hashed_are_the_bytes_read_whatever_the_disk_does_next(
    project: Path, repo_files_a: dict[str, bytes]
) -> None:
    """The model is made from what was read; a file rewritten (or swapped) after that does not change
    the bytes nor their digests: the canary proves what serves."""
    folder = model_file(project).parents[1]
    before = files_of(folder)
    files = ModelBytes.start(folder, "int8")
    tokenizer, graph, sidecar = files.tokenizer, files.graph, files.sidecar
    for name in ("tokenizer.json", "onnx/model_quantized.onnx", "onnx/model_quantized.onnx_data"):
        (folder / name).write_bytes(b"other bytes, as a restore or a swap leaves them")
    assert (tokenizer, graph, sidecar) == (before["tokenizer.json"], before["onnx/model_quantized.onnx"],
                                           before["onnx/model_quantized.onnx_data"])  # fmt: skip
    assert files.digests() == {
        name: hashlib.sha256(before[name]).hexdigest()
        for name in ("tokenizer.json", "onnx/model_quantized.onnx", "onnx/model_quantized.onnx_data")
    }
    files.release()
    assert (files.tokenizer, files.graph, files.sidecar) == (b"", b"", None)


@pytest.mark.parametrize("where", ["tokenizer.json", "onnx/model_quantized.onnx_data"])
@pytest.mark.parametrize("what", ["fifo", "folder", "dangling link"])
def test_a_model_file_that_cannot_be_read_is_a_skipped_folder_never_a_hang(
    project: Path, record: ProbeRecord, where: str, what: str
) -> None:
    folder = model_file(project).parents[1]
    path = folder / where
    path.unlink()
    if what == "fifo":
        os.mkfifo(path)
    elif what == "folder":
        path.mkdir()
    else:
        path.symlink_to(folder / "no such file")  # what a file removed between the check and the read leaves
    files = ModelBytes.start(folder, "int8")  # never raises: the accessors do
    with pytest.raises(ModelFileError, match=Path(where).name):
        files.digests()
    files.release()
    service = app_service(project, record)  # the folder's check sees it first: int8 is not served
    with pytest.raises(EmbeddingsDisabledError):
        service.load()
    skipped = service.explain()["resolution"]["skipped"]
    assert [s["reason"] for s in skipped if s["variant"] == "int8" and s["kind"] == "source"] == [
        f"{where} is not a regular file" if what != "dangling link" else
        f"{where} is (or sits under) a symlink or junction (refused)"
    ], skipped  # fmt: skip
