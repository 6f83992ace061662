"""verify trusts nothing that sits beside the artifact: each tampering below also forges the build's
manifest and SBOM to match, and verify still names the file, from its independent anchors."""

from __future__ import annotations

import importlib.util
import json
import marshal
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from build_hooks.bundle import Builder
from build_hooks.manifest import dist_entries, manifest_path
from build_hooks.sbom import sbom_path
from build_hooks.verify import locate, verify, write_outputs
from devtools.demo_project import Project
from embedding_runtime.build_api import PROBE_RECORD_FILE, data_path
from tests.artifacts import linked_copy
from tests.support import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(params=["pyinstaller", "nuitka"])
def builder(request: pytest.FixtureRequest) -> Builder:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def copy(builder: Builder, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A copy of the built artifact (hard links: a tampering replaces a file, never writes through)."""
    built = Path(request.getfixturevalue(f"{builder}_artifact"))
    return linked_copy(built, tmp_path / "artifacts" / built.name)


def replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    replace(path, bytes(data))


def forge_records(dist: Path) -> None:
    """What an attacker does after changing the dist: the manifest and the SBOM made to agree with it."""
    entries = dist_entries(dist)
    manifest = json.loads(manifest_path(dist).read_text())
    manifest["files"] = {rel: {"size": e.size, "sha256": e.sha256} for rel, e in entries.items()}
    manifest_path(dist).write_text(json.dumps(manifest))
    sbom = json.loads(sbom_path(dist).read_text())

    def forged(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for component in components:
            places = [o["location"] for o in component.get("evidence", {}).get("occurrences", [])]
            if places and places[0] not in entries:
                continue  # a file that is gone leaves the SBOM too
            if places:
                component["hashes"] = [{"alg": "SHA-256", "content": entries[places[0]].sha256}]
            component["components"] = list(forged(component.get("components", [])))
            yield component

    sbom["components"] = list(forged(sbom["components"]))
    executable = next(rel for rel in entries if Path(rel).name in ("local-notes", "local-notes.exe"))
    sbom["metadata"]["component"]["hashes"] = [{"alg": "SHA-256", "content": entries[executable].sha256}]
    sbom_path(dist).write_text(json.dumps(sbom))


def malicious_probe_pyc(dist: Path, project: Project) -> Path:
    """The runtime's canary module, with its check opening on ``return None``, compiled as PyInstaller does."""
    target = dist / "_internal" / "embedding_runtime" / "_probe.pyc"
    source = (REPO_ROOT / "embedding_runtime" / "_probe.py").read_text()
    marker = "    vectors = embed(record.texts)\n"
    assert marker in source
    code = compile(source.replace(marker, "    return None\n" + marker, 1), "embedding_runtime/_probe.py", "exec")
    replace(target, importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + bytes(8) + marshal.dumps(code))
    return target


def flipped_onnxruntime(dist: Path, project: Project) -> Path:
    target = next(dist.rglob("onnxruntime_pybind11_state*.so"))
    flip_middle_byte(target)
    return target


def flipped_executable(dist: Path, project: Project) -> Path:
    target = locate(dist, project.target).executable
    flip_middle_byte(target)
    return target


def removed_library(dist: Path, project: Project) -> Path:
    target = next(dist.rglob("_pocketfft_umath*.so"))
    target.unlink()
    return target


def lowered_probe_floor(dist: Path, project: Project) -> Path:
    target = locate(dist, project.target).data_root / data_path(PROBE_RECORD_FILE)
    record = json.loads(target.read_text())
    record["int8_min_cosine"], record["int8_agreement"] = -1.0, -1.0
    replace(target, json.dumps(record, sort_keys=True).encode() + b"\n")
    return target


def symlink_outside(dist: Path, project: Project) -> Path:
    """An identical copy outside the artifact, linked in place of the file, the link's length the file's size."""
    target = locate(dist, project.target).data_root / data_path("MODEL-NOTICE.txt")
    content = target.read_bytes()
    outside = dist.parent.parent / "elsewhere"
    outside.mkdir(exist_ok=True)
    length = len(content) - len(str(outside)) - 1
    # Folders of 100 characters (a name may not exceed 255), then the rest: the whole path is as long as the file.
    parts = ["x" * 99] * (length // 100) + ["y" * (length % 100 or 1)]
    copy = outside.joinpath(*parts)
    assert len(str(copy)) in (len(content), len(content) + 1)
    if len(str(copy)) != len(content):
        copy = copy.with_name(copy.name[:-1] or "z")
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(content)
    target.unlink()
    target.symlink_to(copy)
    return target


TAMPERINGS: dict[str, Callable[[Path, Project], Path]] = {
    "a malicious runtime .pyc": malicious_probe_pyc,
    "a flipped byte in onnxruntime's library": flipped_onnxruntime,
    "a flipped byte in the executable": flipped_executable,
    "a library removed with its records": removed_library,
    "the probe record's floor lowered": lowered_probe_floor,
    "a file replaced by a symlink outside": symlink_outside,
}


# Nuitka compiles the runtime into its executable: it has no .pyc to tamper with.
CASES = [
    (b, how)
    for b in ("pyinstaller", "nuitka")
    for how in TAMPERINGS
    if (b, how) != ("nuitka", "a malicious runtime .pyc")
]


@pytest.mark.parametrize(("builder", "how"), CASES)
def test_a_tampering_with_forged_records_fails_verify_naming_the_file(
    builder: Builder, copy: Path, artifact_project: Project, how: str
) -> None:
    changed = TAMPERINGS[how](copy, artifact_project).relative_to(copy).as_posix()
    forge_records(copy)
    verdict = verify(copy, artifact_project.target, run_self_check=False)
    if how == "a flipped byte in the executable" and builder == "nuitka":
        # Only a rebuild could anchor Nuitka's compiled program: reported, not pretended.
        assert any(u.startswith(f"{changed}: ") for u in verdict.report["coverage"]["unanchored"])
        return
    assert not verdict.ok
    assert any(changed in failure for failure in verdict.failures), verdict.failures


def test_an_untouched_artifact_is_anchored_almost_whole(
    builder: Builder, copy: Path, artifact_project: Project
) -> None:
    verdict = verify(copy, artifact_project.target, run_self_check=False)
    assert verdict.ok, verdict.failures
    coverage = verdict.report["coverage"]
    if builder == "pyinstaller":
        assert coverage["anchored_share_of_bytes"] >= 0.99 and coverage["unanchored"] == []
    else:
        assert [u.split(":")[0] for u in coverage["unanchored"]] == ["local-notes"], "only the compiled program"


def test_a_failing_artifact_gets_its_report_and_loses_its_checksums(
    builder: Builder, copy: Path, artifact_project: Project, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    passed = verify(copy, artifact_project.target, run_self_check=False)
    assert write_outputs(passed, reports)[1] is not None
    flipped_onnxruntime(copy, artifact_project)
    failed = verify(copy, artifact_project.target, run_self_check=False)
    report, sums = write_outputs(failed, reports)
    assert sums is None and not (reports / f"{copy.name}.SHA256SUMS").exists(), "no checksums bless a failure"
    assert json.loads(report.read_text())["verdict"] == "fail"


@pytest.mark.parametrize(
    "damage",
    ["a manifest nested 100,000 deep", "an SBOM of 100 MB", "a dangling symlink", "a FIFO in data/"],
)
def test_verify_never_crashes_on_damaged_records_or_files(
    builder: Builder, copy: Path, artifact_project: Project, damage: str
) -> None:
    data = locate(copy, artifact_project.target).data_root / "data"
    if damage == "a manifest nested 100,000 deep":
        manifest_path(copy).write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "an SBOM of 100 MB":
        with sbom_path(copy).open("w") as fh:
            fh.write('{"pad": "' + "x" * (100 * 2**20) + '"}')
    elif damage == "a dangling symlink":
        (data / "gone.txt").symlink_to(copy / "no-such-file")
    else:
        os.mkfifo(data / "pipe")
    verdict = verify(copy, artifact_project.target, run_self_check=False)
    assert not verdict.ok and verdict.failures  # each a line naming what is wrong, never a traceback
    named = {"a manifest nested 100,000 deep": "manifest", "an SBOM of 100 MB": ".cdx.json",
             "a dangling symlink": "gone.txt", "a FIFO in data/": "pipe"}[damage]  # fmt: skip
    assert any(named in failure for failure in verdict.failures), verdict.failures


def test_a_symlink_inside_the_artifact_is_followed_not_refused(
    builder: Builder, copy: Path, artifact_project: Project
) -> None:
    """PyInstaller links relocated libraries inside its own folder: those stay fine."""
    links = [p for p in copy.rglob("*") if p.is_symlink()]
    verdict = verify(copy, artifact_project.target, run_self_check=False)
    assert verdict.ok, verdict.failures
    assert all(link.resolve().is_relative_to(copy.resolve()) for link in links)


@pytest.mark.parametrize("builder", ["pyinstaller"])
def test_two_verifies_of_one_artifact_take_turns_writing(
    builder: Builder, copy: Path, artifact_project: Project, tmp_path: Path
) -> None:
    """A second run waits for the first to finish its report and checksums, then writes its own whole."""
    from filelock import FileLock

    reports = tmp_path / "reports"
    reports.mkdir()
    verdict = verify(copy, artifact_project.target, run_self_check=False)
    waiting = threading.Event()
    written: list[tuple[Path, Path | None]] = []
    other_run = FileLock(reports / f".{copy.name}.verify.lock")
    with other_run:
        writer = threading.Thread(
            target=lambda: written.append(write_outputs(verdict, reports, log=lambda line: waiting.set()))
        )
        writer.start()
        assert waiting.wait(timeout=120), "the second run never said it waits"
        assert not list(reports.glob(f"{copy.name}.*")), "nothing written while the other run holds the lock"
    writer.join(timeout=120)
    report, sums = written[0]
    assert json.loads(report.read_text())["verdict"] == "pass" and sums is not None and sums.is_file()
