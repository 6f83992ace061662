"""One archive per artifact: what a user downloads, exactly as verify passed it.

``dist/archives/<app>-<version>-<os>-<arch>-<builder>.tar.gz`` (``.zip`` on
Windows) holds the artifact folder and its records beside it: the SHA256SUMS
verify wrote for it (only a passing artifact has one), its SBOM, its verify
report and the build's manifest (what verify holds the files to). Every byte, file mode, dotfile and symlink is kept.

Packing is reproducible: entries sorted, every time ``SOURCE_DATE_EPOCH`` (else
the app checkout's commit time, else 1980-01-01), no owner names, the gzip
header without a name or time. Two packs of the same folder are byte-identical.

Unpacking (verify's, and the download check's) refuses what a hostile archive
could do: absolute or ``..`` names, links out of the folder, devices, a second
top-level folder, anything not the artifact and its records.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import platform
import stat
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from build_hooks import fsutil
from build_hooks.errors import PipelineError, UsageError
from build_hooks.freezing import provenance
from build_hooks.freezing.target import Builder, Target, manifest_path, sbom_path
from embedding_runtime.build_api import sha256_file

ARCHIVES_FOLDER = "archives"
SUFFIXES = (".tar.gz", ".zip")
UNVERSIONED = "unversioned"
ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the first time a zip entry can carry
_ZIP_LAST = 4354819199  # 2107-12-31T23:59:59Z, the last
_OS_NAMES = {"linux": "linux", "win32": "windows", "darwin": "macos"}
_ARCH_NAMES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


class ArchiveError(PipelineError):
    """An archive that is not one artifact with its records, or one that would unpack outside its folder."""


def records_of(dist: Path) -> tuple[Path, ...]:
    """The records an archive carries beside the artifact: SHA256SUMS, SBOM, verify report, manifest."""
    return (
        dist.with_name(dist.name + ".SHA256SUMS"),
        sbom_path(dist),
        dist.with_name(dist.name + ".verify.json"),
        manifest_path(dist),
    )


def archive_name(
    target: Target,
    builder: Builder,
    platform_name: str = sys.platform,
    machine: str = "",
    python: tuple[int, int] = (sys.version_info.major, sys.version_info.minor),
) -> str:
    """``<app>-<app version>-<os>-<arch>-py<X.Y>-<builder>`` with ``.tar.gz``, or ``.zip`` on Windows:
    the Python the artifact holds is in the name (a matrix builds one app with several)."""
    config = target.config
    machine = (machine or platform.machine()).lower()
    os_name = _OS_NAMES.get(platform_name, platform_name)
    arch = _ARCH_NAMES.get(machine, machine)
    suffix = ".zip" if platform_name == "win32" else ".tar.gz"
    tag = f"py{python[0]}.{python[1]}"
    return f"{config.app_name}-{config.app_version or UNVERSIONED}-{os_name}-{arch}-{tag}-{builder}{suffix}"


def archives_dir(target: Target) -> Path:
    return target.dist_root / ARCHIVES_FOLDER


def source_date_epoch(checkout: Path, env: dict[str, str] | None = None) -> int:
    """The time every entry carries: ``SOURCE_DATE_EPOCH``, else the commit time of the checkout
    holding the app, else 1980-01-01 (never the clock: two packs must be identical)."""
    epoch = provenance.source_date_epoch(checkout, env)
    return ZIP_EPOCH if epoch is None else epoch


@dataclass(frozen=True)
class Member:
    """One entry: its name in the archive, and the file, folder or symlink on disk."""

    name: str
    path: Path
    kind: str  # "dir", "file" or "symlink"
    mode: int
    link: str = ""


def members(dist: Path) -> list[Member]:
    """The artifact folder, every entry under it, and its records: sorted by name."""
    missing = [p.name for p in records_of(dist) if not p.is_file()]
    if missing:
        raise ArchiveError(
            f"{dist} has no {', '.join(missing)} beside it: only an artifact verify passed is packed "
            "(run `nox -s verify-artifact` first)"
        )
    found = [_member(dist.name, dist)]
    for folder, dirs, files in os.walk(dist):
        dirs.sort()
        base = Path(folder)
        for name in sorted(dirs + files):
            path = base / name
            found.append(_member(path.relative_to(dist.parent).as_posix(), path))
    found += [_member(record.name, record) for record in records_of(dist)]
    return sorted(found, key=lambda m: m.name)


def _member(name: str, path: Path) -> Member:
    info = path.lstat()
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        return Member(name, path, "symlink", 0o777, str(path.readlink()))
    if stat.S_ISDIR(info.st_mode):
        return Member(name, path, "dir", mode)
    if stat.S_ISREG(info.st_mode):
        return Member(name, path, "file", mode)
    raise ArchiveError(f"{path} is neither a file, a folder nor a symlink: an artifact holds no such thing")


def proven_problems(dist: Path) -> list[str]:
    """Why ``dist`` is not what verify passed: its report's verdict, and every file against the
    SHA256SUMS verify wrote (a file changed, added or removed since)."""
    sums, _sbom, report, _manifest = records_of(dist)
    try:
        verdict = json.loads(report.read_text(encoding="utf-8")).get("verdict")
        listed = {
            name: digest for digest, name in (line.split("  ", 1) for line in sums.read_text("utf-8").splitlines())
        }
    except (OSError, ValueError, AttributeError) as err:
        return [f"{report.name} or {sums.name} cannot be read ({err}): run `nox -s verify-artifact` again"]
    if verdict != "pass":
        return [f"{report.name} says {verdict!r}, not pass: only an artifact verify passed is packed"]
    on_disk = {
        Path(folder, name).relative_to(dist.parent).as_posix(): Path(folder, name)
        for folder, _dirs, files in os.walk(dist)
        for name in files
    }
    problems = [f"{name} is not in {sums.name}" for name in sorted(on_disk.keys() - listed.keys())]
    problems += [f"{name} is in {sums.name} but not in the folder" for name in sorted(listed.keys() - on_disk.keys())]
    problems += [
        f"{name} changed since verify passed it"
        for name in sorted(on_disk.keys() & listed.keys())
        if sha256_file(on_disk[name]) != listed[name]
    ]
    return problems


def pack(dist: Path, out: Path, epoch: int) -> Path:
    """Write the archive of ``dist`` (with its records) to ``out``: ``.tar.gz`` or ``.zip`` by its name.
    Only what verify passed, unchanged since, is packed. Written to a temp name and renamed: an
    earlier archive stays whole until the new one is."""
    entries = members(dist)
    if problems := proven_problems(dist):
        raise ArchiveError(
            f"{dist.name} is not what verify passed: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with tmp.open("wb") as raw:
            if out.name.endswith(".zip"):
                _write_zip(raw, entries, epoch)
            elif out.name.endswith(".tar.gz"):
                _write_tar_gz(raw, entries, epoch)
            else:
                raise UsageError(f"{out.name}: an archive's name ends in .tar.gz or .zip")
            raw.flush()
            os.fsync(raw.fileno())
        fsutil.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _write_tar_gz(raw: io.BufferedWriter, entries: list[Member], epoch: int) -> None:
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=epoch, compresslevel=9) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = epoch, entry.mode, 0, 0, "", ""
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            else:
                info.size = entry.path.stat().st_size
                with entry.path.open("rb") as fh:
                    tar.addfile(info, fh)


def _write_zip(raw: io.BufferedWriter, entries: list[Member], epoch: int) -> None:
    stamp = time.gmtime(min(max(epoch, ZIP_EPOCH), _ZIP_LAST))[:6]
    with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for entry in entries:
            name = entry.name + ("/" if entry.kind == "dir" else "")
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 3  # Unix: unzip restores the modes in external_attr
            kind = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "file": stat.S_IFREG}[entry.kind]
            info.external_attr = ((kind | entry.mode) << 16) | (0x10 if entry.kind == "dir" else 0)
            if entry.kind == "file":
                info.compress_type = zipfile.ZIP_DEFLATED
                with entry.path.open("rb") as src, archive.open(info, "w") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
            else:
                archive.writestr(info, entry.link.encode() if entry.kind == "symlink" else b"")


# -- unpacking ------------------------------------------------------------------


def is_archive(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)


def unpack(archive: Path, into: Path) -> Path:
    """Unpack ``archive`` into the empty folder ``into`` as a user's tools would (modes, dotfiles and
    symlinks kept); the artifact folder it holds. Refuses a name outside ``into``, a link out of the
    artifact, a device, and anything besides one artifact folder and its records."""
    names = list(_entries(archive))
    tops = {PurePosixPath(name).parts[0] for name, _kind, _mode, _link in names}
    folders = sorted(t for t in tops if any(n.startswith(t + "/") for n, *_ in names))
    if len(folders) != 1:
        raise ArchiveError(f"{archive.name} holds {len(folders)} folders, not one artifact: {', '.join(folders)}")
    top = folders[0]
    expected = {top, *(r.name for r in records_of(Path(top)))}
    if extra := sorted(tops - expected):
        raise ArchiveError(f"{archive.name} holds {', '.join(extra)} beside the artifact and its records")
    if missing := sorted(expected - tops):
        raise ArchiveError(f"{archive.name} lacks {', '.join(missing)}: it is not an archive the pipeline packed")
    if archive.name.endswith(".zip"):
        _unzip(archive, into, names)
    else:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(into, filter="data")  # refuses absolute names, .., links out, devices
    return into / top


def _entries(archive: Path) -> Iterator[tuple[str, str, int, str]]:
    """(name, kind, mode, link) of every entry, each name checked to stay inside the folder."""
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    mode = info.external_attr >> 16
                    kind = "dir" if info.is_dir() else "symlink" if stat.S_ISLNK(mode) else "file"
                    link = zipped.read(info).decode() if kind == "symlink" else ""
                    yield _checked(archive, info.filename.rstrip("/")), kind, stat.S_IMODE(mode), link
        else:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    if not (member.isdir() or member.isreg() or member.issym()):
                        raise ArchiveError(f"{archive.name}: {member.name} is neither a file, a folder nor a symlink")
                    kind = "dir" if member.isdir() else "symlink" if member.issym() else "file"
                    yield _checked(archive, member.name), kind, member.mode, member.linkname
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise ArchiveError(f"{archive} cannot be read as an archive ({type(err).__name__}: {err})") from err


def _checked(archive: Path, name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or not path.parts or ":" in path.parts[0]:
        raise ArchiveError(f"{archive.name}: the entry {name!r} would land outside the folder it is unpacked into")
    return path.as_posix()


def _unzip(archive: Path, into: Path, names: list[tuple[str, str, int, str]]) -> None:
    """What Info-ZIP's unzip does on Unix (modes and symlinks from the entries), in Python."""
    with zipfile.ZipFile(archive) as zipped:
        for (name, kind, mode, link), info in zip(names, zipped.infolist(), strict=True):
            path = into / name
            if kind == "dir":
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "symlink":
                resolved = (path.parent / link).resolve()
                if PurePosixPath(link).is_absolute() or not resolved.is_relative_to(into.resolve()):
                    raise ArchiveError(f"{archive.name}: the symlink {name} points out of the folder ({link})")
                path.symlink_to(link)
                continue
            with zipped.open(info) as src, path.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            if os.name != "nt" and mode:
                path.chmod(mode & 0o755 | 0o600)
        for name, kind, mode, _link in names:
            if kind == "dir" and os.name != "nt" and mode:
                (into / name).chmod(mode & 0o755 | 0o700)
