"""What users download: one archive per artifact, reproducible, keeping every byte, mode, dotfile and
symlink; checked as a user unpacks it; verified as downloaded, anchored to uv.lock's wheels."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from build_hooks.archive import ArchiveError, pack, records_of, unpack
from build_hooks.freezing.licenses import INDEX_FILE, LICENSES_FOLDER, LicenseMissingError, notices, shipped
from build_hooks.freezing.target import manifest_path
from build_hooks.verification.lock import locked_files, needed_names
from build_hooks.verification.selfcheck import run_offline
from build_hooks.verification.verify import Anchors, marker_problems, verify
from devtools.demo_project import APP_NAME, APP_VERSION, Project
from tests.artifacts import linked_copy
from tests.support import REPO_ROOT, WHEELHOUSE, child_env

EPOCH = 1_700_000_000


def verified_folder(root: Path) -> Path:
    """A small artifact folder as verify leaves it: an executable, a dotfile, a symlink, a non-ASCII
    name, and beside it a passing report, its SHA256SUMS, an SBOM and a manifest."""
    dist = root / "app"
    (dist / "_internal" / "data" / "profile").mkdir(parents=True)
    (dist / "app").write_bytes(b"#!/bin/sh\necho hi\n")
    (dist / "app").chmod(0o755)
    (dist / "_internal" / "data" / "profile" / ".prepared.json").write_text("{}")
    (dist / "_internal" / "données.txt").write_text("é")
    (dist / "_internal" / "libz.so.1.3").write_bytes(b"\x7fELF" + bytes(100))
    (dist / "_internal" / "libz.so.1").symlink_to("libz.so.1.3")
    files = sorted(p for p in dist.rglob("*") if p.is_file())
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}\n" for p in files)
    sums_path, sbom, report, manifest = records_of(dist)
    sums_path.write_text(sums)
    sbom.write_text("{}")
    report.write_text(json.dumps({"verdict": "pass"}))
    manifest.write_text("{}")
    return dist


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_two_packs_are_identical_and_unpack_with_every_mode_dotfile_and_symlink(tmp_path: Path, suffix: str) -> None:
    dist = verified_folder(tmp_path / "built")
    first = pack(dist, tmp_path / "one" / f"app{suffix}", EPOCH)
    os.utime(dist / "app", (1, 1))  # a later touch changes nothing in the archive
    second = pack(dist, tmp_path / "two" / f"app{suffix}", EPOCH)
    assert first.read_bytes() == second.read_bytes()

    into = tmp_path / "user"
    into.mkdir()
    if suffix == ".tar.gz":
        assert first.read_bytes()[4:8] == EPOCH.to_bytes(4, "little"), "gzip's header carries the epoch"
        with tarfile.open(first) as tar:
            assert {(m.uname, m.gname, m.uid, m.gid, m.mtime) for m in tar} == {("", "", 0, 0, EPOCH)}
        subprocess.run(["tar", "-xzf", str(first), "-C", str(into)], check=True)  # as a user unpacks it
    else:
        with zipfile.ZipFile(first) as zipped:
            assert {info.date_time for info in zipped.infolist()} == {(2023, 11, 14, 22, 13, 20)}
        subprocess.run([sys.executable, "-m", "zipfile", "-e", str(first), str(into)], check=True)
        unpack(first, tmp_path / "verify-view")  # verify's unpacking restores what zipfile's CLI does not
        into = tmp_path / "verify-view"
    app = into / "app"
    assert (app / "_internal" / "data" / "profile" / ".prepared.json").is_file()
    assert os.access(app / "app", os.X_OK) and stat.S_IMODE((app / "app").stat().st_mode) == 0o755
    link = app / "_internal" / "libz.so.1"
    assert link.is_symlink() and link.readlink().as_posix() == "libz.so.1.3"
    assert (app / "_internal" / "données.txt").read_text() == "é"
    check = subprocess.run(["sha256sum", "-c", "--quiet", "app.SHA256SUMS"], cwd=into, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_only_what_verify_passed_is_packed_and_a_good_archive_is_never_half_overwritten(tmp_path: Path) -> None:
    dist = verified_folder(tmp_path / "built")
    good = pack(dist, tmp_path / "out" / "app.tar.gz", EPOCH)
    before = good.read_bytes()
    (dist / "_internal" / "données.txt").write_text("changed after verify")
    with pytest.raises(ArchiveError, match=r"données\.txt changed since verify passed it"):
        pack(dist, good, EPOCH)
    (dist / "_internal" / "extra.txt").write_text("x")
    with pytest.raises(ArchiveError, match=r"is not in app\.SHA256SUMS"):
        pack(dist, good, EPOCH)
    records_of(dist)[2].write_text(json.dumps({"verdict": "fail"}))
    with pytest.raises(ArchiveError, match="says 'fail', not pass"):
        pack(dist, good, EPOCH)
    records_of(dist)[0].unlink()
    with pytest.raises(ArchiveError, match=r"no app\.SHA256SUMS beside it"):
        pack(dist, good, EPOCH)
    assert good.read_bytes() == before and sorted(p.name for p in good.parent.iterdir()) == ["app.tar.gz"]


def hostile_tar(path: Path, entries: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in entries:
            data = b"x" * info.size
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        ([entry("app/", tarfile.DIRTYPE), entry("../evil")], "would land outside"),
        ([entry("app/", tarfile.DIRTYPE), entry("/etc/evil")], "would land outside"),
        ([entry("app/", tarfile.DIRTYPE), entry("app/x", tarfile.SYMTYPE, "../../etc/passwd")], "outside"),
        ([entry("app/a"), entry("other/b")], "2 folders, not one artifact"),
        ([entry("app/a"), entry("README")], "holds README beside the artifact"),
        ([entry("app/a"), entry("app/dev", tarfile.CHRTYPE)], "neither a file, a folder nor a symlink"),
        ([entry("app/a")], "lacks app.SHA256SUMS"),
    ],
)
def test_a_hostile_archive_is_refused_in_one_line(tmp_path: Path, entries: list[tarfile.TarInfo], says: str) -> None:
    records = [entry(r.name) for r in records_of(Path("app"))] if "lacks" not in says else []
    archive = hostile_tar(tmp_path / "evil.tar.gz", entries + records)
    (tmp_path / "into").mkdir()
    with pytest.raises((ArchiveError, tarfile.TarError), match=says):
        unpack(archive, tmp_path / "into")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "etc").exists()


# -- the real artifacts ---------------------------------------------------------------


def pipeline_step(project: Project, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "build_hooks.cli", *args], cwd=project.root, env=child_env(), capture_output=True,
        text=True, timeout=1800,
    )  # fmt: skip


@pytest.fixture(scope="module")
def archives(
    artifact_project: Project,
    pyinstaller_artifact: Path,
    nuitka_artifact: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """verify-artifact and archive-artifact as the nightly runs them, on copies of both artifacts laid
    out as dist/ is: the archives, by builder."""
    dist_root = tmp_path_factory.mktemp("dist")
    target = artifact_project.target
    copies = [
        linked_copy(pyinstaller_artifact, target.dist_dir("pyinstaller", dist_root)),
        linked_copy(nuitka_artifact, target.dist_dir("nuitka", dist_root)),
    ]
    verified = pipeline_step(artifact_project, "verify-artifact", *map(str, copies), "--static-only")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    packed = pipeline_step(
        artifact_project, "archive-artifact", *map(str, copies), "--out", str(dist_root / "archives")
    )
    assert packed.returncode == 0, packed.stderr
    paths = [Path(line) for line in packed.stdout.splitlines()]
    return {path.name.rsplit("-", 1)[1].removesuffix(".tar.gz"): path for path in paths}


def test_the_demo_leaves_one_archive_per_artifact_named_for_the_app_its_version_and_the_machine(
    archives: dict[str, Path],
) -> None:
    """...and the Python it holds: a matrix that builds the app with 3.11 and 3.13 uploads both."""
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}[os.uname().machine]
    python = f"py{sys.version_info.major}.{sys.version_info.minor}"
    assert sorted(p.name for p in archives.values()) == [
        f"{APP_NAME}-{APP_VERSION}-linux-{arch}-{python}-{builder}.tar.gz" for builder in ("nuitka", "pyinstaller")
    ]


@pytest.mark.parametrize("builder", ["pyinstaller", "nuitka"])
def test_unpacked_elsewhere_every_file_checks_out_and_runs_offline(
    archives: dict[str, Path], tmp_path: Path, builder: str
) -> None:
    """What the README's "Checking an artifact you downloaded" asks of a user, on the real archive."""
    subprocess.run(["tar", "-xzf", str(archives[builder]), "-C", str(tmp_path)], check=True)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert list(folder.rglob(".prepared.json")), "the marker survives the download"
    program = folder / APP_NAME
    assert os.access(program, os.X_OK)
    check = subprocess.run(["sha256sum", "-c", "--quiet", f"{folder.name}.SHA256SUMS"], cwd=tmp_path)
    assert check.returncode == 0
    result = run_offline(program, ["--self-check"], tmp_path / "home")
    assert result.returncode == 0 and json.loads(result.stdout)["ok"], result.stdout[-2000:] + result.stderr


def test_verify_takes_the_archive_as_downloaded(
    artifact_project: Project, archives: dict[str, Path], tmp_path: Path
) -> None:
    downloaded = [shutil.copy(path, tmp_path / path.name) for path in archives.values()]
    result = pipeline_step(artifact_project, "verify-artifact", *map(str, downloaded))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("archive          ok") == 2 and "FAIL" not in result.stdout
    for archive in map(Path, downloaded):
        stem = archive.name.removesuffix(".tar.gz")
        assert (tmp_path / f"{stem}.SHA256SUMS").is_file(), "the reports go beside the archive, named after it"
    # The same archive, broken in transit: its earlier pass is taken away, whatever the archive held.
    broken = Path(downloaded[0])
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    again = pipeline_step(artifact_project, "verify-artifact", str(broken))
    assert again.returncode == 1, again.stdout[-2000:] + again.stderr[-2000:]
    stem = broken.name.removesuffix(".tar.gz")
    assert not (tmp_path / f"{stem}.SHA256SUMS").exists() and not (tmp_path / f"{stem}.verify.json").exists()


def repack(archive: Path, out: Path, change: Callable[[Path], None]) -> Path:
    """The archive unpacked, changed by ``change`` (a forger's edit), and packed again as the step packs it."""
    work = out.parent / "forger"
    work.mkdir(parents=True)
    dist = unpack(archive, work)
    change(dist)
    return pack(dist, out, EPOCH)


def forge_records(dist: Path) -> None:
    """Every record beside the artifact rewritten to match its files: manifest, SHA256SUMS."""
    manifest = json.loads(manifest_path(dist).read_text())
    for rel, entry in manifest["files"].items():
        data = (dist / rel).read_bytes()
        entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    manifest_path(dist).write_text(json.dumps(manifest))
    files = sorted(p for p in dist.rglob("*") if p.is_file())
    sums = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(dist.parent).as_posix()}\n" for p in files
    )
    records_of(dist)[0].write_text(sums)


def test_an_archive_changed_after_packing_fails_naming_the_file(
    artifact_project: Project, archives: dict[str, Path], tmp_path: Path
) -> None:
    def edit(dist: Path) -> None:
        (dist / "_internal" / "tokenizers" / "__init__.pyc").write_bytes(b"forged")
        forge_records(dist)

    forged = repack(archives["pyinstaller"], tmp_path / "forged" / archives["pyinstaller"].name, edit)
    result = pipeline_step(artifact_project, "verify-artifact", str(forged), "--static-only")
    assert result.returncode == 1
    assert "_internal/tokenizers/__init__.pyc" in result.stderr, result.stderr[-3000:]


def poisoned_environment(tmp_path: Path) -> tuple[Path, Path]:
    """A real copy of this build environment in which numpy's core library was changed and its
    RECORD rewritten to match (it still loads: a byte of its compiler note is changed). The copy's
    python and that library."""
    copy = tmp_path / "poisoned-venv"
    shutil.copytree(sys.prefix, copy, symlinks=True)
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    site = copy / site.relative_to(sys.prefix)
    library = next((site / "numpy" / "_core").glob("_multiarray_umath.*.so"))
    data = bytearray(library.read_bytes())
    at = data.index(b"GCC: (")
    data[at + 5] = ord("[")
    library.unlink()
    library.write_bytes(bytes(data))
    record = next(site.glob("numpy-*.dist-info")) / "RECORD"
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    rel = library.relative_to(site).as_posix()
    lines = [f"{rel},sha256={digest},{len(data)}" if line.startswith(rel + ",") else line
             for line in record.read_text().splitlines()]  # fmt: skip
    record.write_text("\n".join(lines) + "\n")
    return copy / "bin" / "python", library


def test_verify_anchors_to_the_lock_not_to_a_poisoned_environment(
    artifact_project: Project, archives: dict[str, Path], tmp_path: Path
) -> None:
    python, library = poisoned_environment(tmp_path)
    installed = subprocess.run([str(python), "-c", "import numpy; print(numpy.__file__)"], env=child_env(),
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert installed.startswith(str(tmp_path)), "the copy imports its own (poisoned) numpy"

    clean = pipeline_step(artifact_project, "verify-artifact", str(archives["pyinstaller"]), python=str(python))
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]

    def poison(dist: Path) -> None:
        shipped = dist / "_internal" / "numpy" / "_core" / library.name
        shipped.unlink()
        shutil.copyfile(library, shipped)
        forge_records(dist)

    poisoned = repack(archives["pyinstaller"], tmp_path / "poisoned" / archives["pyinstaller"].name, poison)
    result = pipeline_step(artifact_project, "verify-artifact", str(poisoned), "--static-only", python=str(python))
    assert result.returncode == 1
    assert f"_internal/numpy/_core/{library.name} differs from" in result.stderr, result.stderr[-3000:]


def test_offline_with_an_empty_wheelhouse_is_one_line_naming_the_wheel(
    artifact_project: Project, pyinstaller_artifact: Path, tmp_path: Path
) -> None:
    lock = REPO_ROOT / "uv.lock"
    first = locked_files(lock, needed_names(lock))[0]
    verdict = verify(pyinstaller_artifact, artifact_project.target, run_self_check=False,
                     anchors=Anchors(lock, tmp_path / "empty"))  # fmt: skip
    anchors = [f for f in verdict.failures if f.startswith("anchors:")]
    assert len(anchors) == 1 and first.filename in anchors[0] and "embedding-pipeline wheelhouse" in anchors[0]

    wrong = tmp_path / "wrong"
    shutil.copytree(WHEELHOUSE, wrong)
    (wrong / first.filename).write_bytes(b"not the wheel")
    verdict = verify(pyinstaller_artifact, artifact_project.target, run_self_check=False, anchors=Anchors(lock, wrong))
    (line,) = [f for f in verdict.failures if f.startswith("anchors:")]
    assert f"not the {first.sha256} uv.lock pins" in line


# -- licences ---------------------------------------------------------------------------


@pytest.mark.parametrize("builder", ["pyinstaller", "nuitka"])
def test_every_artifact_carries_the_licence_texts_of_what_it_ships(
    pyinstaller_artifact: Path, nuitka_artifact: Path, builder: str
) -> None:
    dist = pyinstaller_artifact if builder == "pyinstaller" else nuitka_artifact
    folder = dist / LICENSES_FOLDER
    index = (folder / INDEX_FILE).read_text()
    listed = [line.strip() for line in index.splitlines() if line.startswith("    ") and "links in" not in line]
    assert listed and all((folder / name).is_file() for name in listed if not name.endswith(":")), listed
    heads = {line.split(" ")[0] for line in index.splitlines() if line and not line.startswith(" ")}
    assert {"numpy", "onnxruntime", "tokenizers", "tiktoken", "Python"} <= heads, heads
    assert "regex" not in heads, "the launcher's exclude-modules leaves regex out: its licence goes with it"
    numpy = next(folder.glob("numpy-*/LICENSE.txt")).read_text()
    assert "OpenBLAS" in numpy, "numpy's licence carries OpenBLAS's, the library it ships"
    assert next(folder.glob("onnxruntime-*/ThirdPartyNotices.txt")).stat().st_size > 10_000
    tokenizers = next(folder.glob("tokenizers-*/Apache-2.0.txt")).read_text()
    assert "Apache License" in tokenizers and "Anthony MOI" in tokenizers, "its SBOM's copyright line"
    assert "links in" in index, "the Rust crates the tokenizers wheel links in are listed"
    assert "PYTHON SOFTWARE FOUNDATION LICENSE" in (folder / "python" / "LICENSE.txt").read_text()
    # A system library is named by the package that installed it (libcrypto.so.3 comes with Debian's libssl3).
    assert any(line.startswith(("libcrypto.so.3: Debian package", "libcrypto.so.3: RPM package"))
               for line in index.splitlines()) or "libcrypto" not in index  # fmt: skip


def test_verify_names_a_missing_licence_text(
    artifact_project: Project, pyinstaller_artifact: Path, tmp_path: Path
) -> None:
    dist = linked_copy(pyinstaller_artifact, tmp_path / APP_NAME)
    (missing,) = dist.glob(f"{LICENSES_FOLDER}/tokenizers-*/Apache-2.0.txt")
    missing.unlink()
    forge_manifest = json.loads(manifest_path(dist).read_text())
    del forge_manifest["files"][missing.relative_to(dist).as_posix()]
    manifest_path(dist).write_text(json.dumps(forge_manifest))
    verdict = verify(dist, artifact_project.target, run_self_check=False)
    assert any(f"{missing.relative_to(dist).as_posix()} is missing" in f for f in verdict.failures), verdict.failures


def fake_distribution(site: Path, name: str, licence: str, files: dict[str, str]) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\nLicense: {licence}\n")
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    (info / "RECORD").write_text("".join(f"{rel},,\n" for rel in [*files, f"{info.name}/METADATA"]))


def test_shipping_something_without_a_licence_text_is_refused_naming_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "closedthing", "Proprietary", {"closedthing/__init__.py": ""})
    fake_distribution(site, "apachething", "Apache Software License", {"apachething/__init__.py": ""})
    apache = shipped([("apachething/__init__.pyc", site / "apachething" / "__init__.py")], site=[site])
    texts = notices(apache)
    assert "Apache License" in texts["apachething-1.0/Apache-2.0.txt"].decode(), "a standard text stands in"
    closed = shipped([("closedthing/__init__.pyc", site / "closedthing" / "__init__.py")], site=[site])
    with pytest.raises(LicenseMissingError, match=r"closedthing 1\.0 ships no licence text"):
        notices(closed)
    stray = tmp_path / "libstray.so.1"
    stray.write_bytes(b"\x7fELF")
    with pytest.raises(LicenseMissingError, match=r"libstray\.so\.1 .* belongs to no distribution"):
        notices(shipped([("libstray.so.1", stray)], site=[site]))


def test_the_visual_cpp_runtime_gets_microsofts_notice_whoever_shipped_it(tmp_path: Path) -> None:
    """On Windows the VC runtime DLLs come with python.org's build or a wheel: their notice ships anyway."""
    dll = tmp_path / "vcruntime140.dll"
    dll.write_bytes(b"MZ")
    what = shipped([("_internal/vcruntime140.dll", dll)], site=[tmp_path / "empty"])
    assert what.system_libraries == (("vcruntime140.dll", dll),)
    texts = notices(what, platform="win32")
    assert "Microsoft Visual C++ Redistributable" in texts["system/vcruntime140.dll.txt"].decode()
    assert "vcruntime140.dll: the Microsoft Visual C++ Redistributable" in texts[INDEX_FILE].decode()


def test_the_profile_marker_is_held_to_what_it_says_not_where_it_was_prepared(tmp_path: Path) -> None:
    """A fresh runner's prepare-model writes its own source and file times: the download still verifies;
    any other field of the marker is compared, and one it does not know fails."""
    marker = {
        "files": {"onnx/model.onnx": {"mtime_ns": 1, "sha256": "a" * 64, "size": 3}},
        "license": "MIT", "profile_id": "p-v1", "repo": "o/r", "revision": "b" * 40, "schema": 1,
        "source": "https://hub.example", "variants": ["fp32"],
    }  # fmt: skip
    here = tmp_path / "here.json"
    here.write_text(json.dumps(marker))
    shipped = tmp_path / "shipped.json"

    def says(**changes: object) -> list[str]:
        record = json.loads(json.dumps(marker))
        for key, value in changes.items():
            if key == "file":
                record["files"]["onnx/model.onnx"].update(value)
            else:
                record[key] = value
        shipped.write_text(json.dumps(record))
        return marker_problems(shipped, here)

    assert says(source="/home/runner/model-source", file={"mtime_ns": 99}) == []
    assert says(file={"sha256": "c" * 64}) == ["says another files than the prepared profile's marker"]
    assert says(revision="d" * 40) == ["says another revision than the prepared profile's marker"]
    assert says(trusted=True) == ["says another trusted than the prepared profile's marker"]
    shipped.write_text("[]")
    assert marker_problems(shipped, here) == ["is not a profile marker (unreadable, or no files)"]
