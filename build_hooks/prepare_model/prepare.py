"""Prepare a model profile folder: fetch, verify and atomically install a pinned model.

The live profile folder is only ever replaced whole. Files are fetched into a
download folder beside it (as resumable partial files, hashed as they arrive),
verified against the hashes their source published for the pinned commit,
assembled into a staging folder with ``.prepared.json`` written last, and
swapped in with two renames. A crash at any moment leaves the previous complete
profile (or, between the two renames, a backup that the next run restores); the
next run repairs whatever was left behind and resumes the partial files of the
same pin where they stopped.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock, Timeout
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from build_hooks import fsutil
from build_hooks.config import validated_pin
from build_hooks.errors import InsufficientSpaceError, OutputLocationError, SourceError, UsageError
from build_hooks.prepare_model.hashing import DownloadDigest
from build_hooks.prepare_model.partial import PART_SUFFIX, PartialFile, sweep_download_dir
from build_hooks.prepare_model.retry import RetryPolicy, SourceGaveUpError, call_with_retry
from build_hooks.prepare_model.sources import ModelSource, RemoteFile
from embedding_runtime.build_api import (
    MARKER_NAME,
    MARKER_SCHEMA,
    VARIANTS,
    MarkerFile,
    PreparedMarker,
    files_for_variants,
    read_marker,
    sha256_file,
)

LOCK_TIMEOUT_SECONDS = 3600.0
# As many files at once as the hub client's own snapshot download uses.
FETCH_WORKERS = 8

Log = Callable[[str], None]


@dataclass(frozen=True)
class PrepareRequest:
    """What to prepare and from where. ``sources`` are tried in order."""

    repo: str
    revision: str
    profile_id: str
    output_root: Path
    variants: tuple[str, ...]
    sources: tuple[ModelSource, ...]
    force: bool = False
    verify: bool = False
    license: str = ""
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class PrepareResult:
    profile_dir: Path
    changed: bool
    fetched: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Fetched:
    source: str
    sha256: str
    partial: Path  # the verified file, still in the download folder until every file is in


@dataclass(frozen=True)
class ProfilePaths:
    """The live profile folder and its hidden working folders beside it."""

    root: Path
    profile_id: str

    @property
    def profile(self) -> Path:
        return self.root / self.profile_id

    @property
    def staging(self) -> Path:
        return self.root / f".{self.profile_id}.staging"

    @property
    def previous(self) -> Path:
        return self.root / f".{self.profile_id}.previous"

    @property
    def download(self) -> Path:
        return self.root / f".{self.profile_id}.download"

    @property
    def lock(self) -> Path:
        return self.root / f".{self.profile_id}.lock"


def validate_request(request: PrepareRequest) -> None:
    """Raise :class:`UsageError` for a malformed pin, before anything is touched."""
    if not request.variants or any(v not in VARIANTS for v in request.variants):
        raise UsageError(f"unknown variants {request.variants!r}: pass one of fp32, int8, both")
    variants = request.variants[0] if len(set(request.variants)) == 1 else "both"
    validated_pin(request.repo, request.revision, request.profile_id, variants)
    try:
        validate_repo_id(request.repo)  # the hub's own, stricter rules
    except HFValidationError as err:
        raise UsageError(f"--repo {request.repo!r} is not a hub repo id like 'owner/name'") from err
    if not request.sources:
        raise UsageError("no source to prepare from: pass --endpoint, --source or --offline")
    for path in files_for_variants(request.variants):
        safe_relative_path(path)


def safe_relative_path(name: str) -> PurePosixPath:
    """Return ``name`` as a relative path that cannot leave the profile folder, or raise."""
    path = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or path.is_absolute()
        or re.match(r"^[A-Za-z]:", name)
        or any(part in ("", ".", "..") for part in name.split("/"))
    ):
        raise UsageError(f"refusing file name {name!r}: it would leave the profile folder")
    return path


def prepare_profile(request: PrepareRequest, *, log: Log = lambda message: None) -> PrepareResult:
    """Make ``<output_root>/<profile_id>`` a complete, verified copy of the pinned files.

    Args:
        request: the pin, the variants and the sources to try in order.
        log: receives one human-readable line per step (a file fetched, a retry).

    Returns:
        What was fetched, reused and removed; ``changed`` is False for a no-op.

    Raises:
        UsageError: a malformed pin or output root (nothing touched).
        OutputLocationError: the output root cannot be written.
        InsufficientSpaceError: too little free space for the download.
        SourceError: no source delivered a file that matches its published hash.
    """
    validate_request(request)
    paths = ProfilePaths(request.output_root, request.profile_id)
    _ensure_output_root(paths.root)
    lock = FileLock(paths.lock)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"another prepare is working on {paths.profile}; waiting for it to finish")
        lock.acquire(timeout=LOCK_TIMEOUT_SECONDS)
    try:
        return _prepare_locked(request, paths, log)
    finally:
        lock.release()


def _prepare_locked(request: PrepareRequest, paths: ProfilePaths, log: Log) -> PrepareResult:
    _recover_interrupted_swap(paths, log)
    needed = files_for_variants(request.variants)
    current = None if request.force else read_marker(paths.profile)
    same_pin = current is not None and (current.profile_id, current.repo, current.revision) == (
        request.profile_id,
        request.repo,
        request.revision,
    )
    intact = _intact_files(paths.profile, current, verify=request.verify, log=log) if same_pin and current else {}
    reused = {path: entry for path, entry in intact.items() if path in needed}

    if (
        current is not None
        and same_pin
        and set(current.variants) == set(request.variants)
        and len(reused) == len(needed)
    ):
        if any(entry.mtime_ns != current.files[path].mtime_ns for path, entry in reused.items()):
            _write_marker(paths.profile, _marker(request, reused, current.source))
        fsutil.remove_tree(paths.download)  # partials of another pin, left by a killed run
        return PrepareResult(paths.profile, changed=False, reused=tuple(needed), source=current.source)

    to_fetch = [path for path in needed if path not in reused]
    remote, listing_source = _list_remote(request, to_fetch, log) if to_fetch else ({}, None)
    paths.download.mkdir(exist_ok=True)
    for leftover in sweep_download_dir(paths.download, to_fetch):
        log(f"removed {leftover.relative_to(paths.download).as_posix()}, left by an earlier run")
    _check_free_space(paths.root, sum(r.size for r in remote.values()) - _partial_bytes(paths.download))

    fsutil.remove_tree(paths.staging)
    paths.staging.mkdir()
    for path in reused:
        fsutil.link_or_copy(paths.profile / path, paths.staging / path)
    sources = _ordered_sources(request.sources, listing_source)
    fetched = _fetch_all([remote[path] for path in to_fetch], sources, paths, request, log)
    for path, done in fetched.items():
        target = paths.staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        done.partial.replace(target)

    sha256s = {**{path: entry.sha256 for path, entry in reused.items()}, **{p: f.sha256 for p, f in fetched.items()}}
    installed = {path: _install_entry(paths.staging / path, sha256s[path]) for path in needed}
    labels = sorted({f.source for f in fetched.values()})
    source_label = ", ".join(labels) if labels else (current.source if current else "")
    _write_marker(paths.staging, _marker(request, installed, source_label))
    _swap_in(paths)
    fsutil.remove_tree(paths.download)
    removed = tuple(sorted(set(current.files) - set(needed))) if current else ()
    return PrepareResult(
        paths.profile,
        changed=True,
        fetched=tuple(to_fetch),
        reused=tuple(reused),
        removed=removed,
        source=source_label,
    )


def _ensure_output_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise UsageError(f"--output-root {root} is a file: pass a folder (it is created when missing)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root, prefix=".write-probe-"):
            pass
    except OSError as err:
        raise OutputLocationError(
            f"cannot write to {root} ({err.strerror or err}): fix its permissions or pass another --output-root"
        ) from err


def _recover_interrupted_swap(paths: ProfilePaths, log: Log) -> None:
    """Undo what a run killed between (or after) the two renames of a swap left behind."""
    if paths.previous.exists():
        if paths.profile.exists():
            fsutil.remove_tree(paths.previous)
        else:
            log(f"restoring the previous profile that an interrupted run left in {paths.previous.name}")
            fsutil.rename(paths.previous, paths.profile)
    fsutil.remove_tree(paths.staging)


def _intact_files(profile: Path, marker: PreparedMarker, *, verify: bool, log: Log) -> dict[str, MarkerFile]:
    """The marker's files that are still as recorded: size (and mtime) equal, or hash equal on re-read."""
    intact: dict[str, MarkerFile] = {}
    for path, entry in marker.files.items():
        local = profile / path
        try:
            st = local.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
            continue
        # A changed mtime costs a re-hash, never a blind download.
        if (verify or st.st_mtime_ns != entry.mtime_ns) and sha256_file(local) != entry.sha256:
            log(f"{path} no longer matches its recorded sha256; fetching it again")
            continue
        intact[path] = MarkerFile(entry.size, entry.sha256, st.st_mtime_ns)
    return intact


def _list_remote(request: PrepareRequest, paths: Sequence[str], log: Log) -> tuple[dict[str, RemoteFile], ModelSource]:
    attempts: list[tuple[str, str]] = []
    for source in request.sources:
        try:
            listing = call_with_retry(
                partial(source.list_files, paths),
                request.retry,
                on_retry=_retry_logger(log, source.label, "file list"),
            )
        except SourceGaveUpError as failure:
            attempts.append((source.label, failure.answer))
            continue
        return listing, source
    raise SourceError(f"the file list of {request.repo}@{request.revision}", attempts)


def _ordered_sources(sources: Sequence[ModelSource], first: ModelSource | None) -> list[ModelSource]:
    # Fetch from the source that listed the files first; the others are fallbacks.
    return [first, *(s for s in sources if s is not first)] if first else list(sources)


def _fetch_all(
    remotes: Sequence[RemoteFile],
    sources: Sequence[ModelSource],
    paths: ProfilePaths,
    request: PrepareRequest,
    log: Log,
) -> dict[str, Fetched]:
    """Fetch and verify every file concurrently, so requests and hashing overlap."""
    if not remotes:
        return {}
    pin = f"{request.repo}@{request.revision}"
    fetch_one = partial(_fetch_verified, sources=sources, folder=paths.download, pin=pin, retry=request.retry, log=log)
    with ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, len(remotes)), thread_name_prefix="fetch") as pool:
        futures = [pool.submit(fetch_one, remote) for remote in remotes]
        try:
            return {remote.path: future.result() for remote, future in zip(remotes, futures, strict=True)}
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _fetch_verified(
    remote: RemoteFile, *, sources: Sequence[ModelSource], folder: Path, pin: str, retry: RetryPolicy, log: Log
) -> Fetched:
    """Fetch ``remote`` into its partial file from the first source that delivers the published bytes."""
    attempts: list[tuple[str, str]] = []
    for source in sources:
        started = time.monotonic()
        into = PartialFile.open(folder, remote, pin)
        try:
            call_with_retry(
                partial(source.fetch, remote, into), retry, on_retry=_retry_logger(log, source.label, remote.path)
            )
        except SourceGaveUpError as failure:
            attempts.append((source.label, failure.answer))
            continue  # what arrived stays, for the next source or the next run
        finally:
            digest = into.finish()
        if problem := _content_problem(digest, remote):
            into.discard()
            attempts.append((source.label, problem))
            log(f"{remote.path} from {source.label}: {problem}")
            if into.resumed:  # the bytes on disk may be what was wrong: once more from the start
                log(f"{remote.path}: fetching it again from the start")
                return _fetch_verified(remote, sources=sources, folder=folder, pin=pin, retry=retry, log=log)
            continue
        resumed = f", resumed at {_mib(into.resumed)}" if into.resumed else ""
        log(
            f"fetched {remote.path} ({_mib(digest.size)}) from {source.label} ({source.transfer}{resumed}), "
            f"hash verified, in {time.monotonic() - started:.1f} s"
        )
        return Fetched(source.label, digest.sha256, into.path)
    raise SourceError(remote.path, attempts)


def _content_problem(digest: DownloadDigest, remote: RemoteFile) -> str | None:
    if digest.size != remote.size:
        return f"wrong size: expected {remote.size} bytes, got {digest.size}"
    if digest.agrees_with(sha256=remote.sha256, git_blob_id=remote.git_blob_id):
        return None
    if remote.sha256:
        return f"wrong content: expected sha256 {remote.sha256}, got {digest.sha256}"
    return f"wrong content: expected git blob id {remote.git_blob_id}, got {digest.git_blob_id}"


def _install_entry(path: Path, sha256: str) -> MarkerFile:
    path.chmod(fsutil.SHARED_FILE_MODE)  # readable by every user of an artifact, whatever the source wrote
    st = path.stat()
    return MarkerFile(st.st_size, sha256, st.st_mtime_ns)


def _marker(request: PrepareRequest, files: dict[str, MarkerFile], source: str) -> PreparedMarker:
    return PreparedMarker(
        profile_id=request.profile_id,
        repo=request.repo,
        revision=request.revision,
        variants=tuple(v for v in VARIANTS if v in request.variants),
        files=files,
        source=source,
        license=request.license,
    )


def _write_marker(folder: Path, marker: PreparedMarker) -> None:
    data = json.dumps(marker_json(marker), indent=2, sort_keys=True).encode() + b"\n"
    fsutil.atomic_write_bytes(folder / MARKER_NAME, data)


def marker_json(marker: PreparedMarker) -> dict[str, Any]:
    """The ``.prepared.json`` document of ``marker`` (the runtime reads it with ``read_marker``)."""
    return {
        "schema": MARKER_SCHEMA,
        "profile_id": marker.profile_id,
        "repo": marker.repo,
        "revision": marker.revision,
        "variants": list(marker.variants),
        "source": marker.source,
        "license": marker.license,
        "files": {
            path: {"size": f.size, "sha256": f.sha256, "mtime_ns": f.mtime_ns}
            for path, f in sorted(marker.files.items())
        },
    }


def _swap_in(paths: ProfilePaths) -> None:
    if paths.profile.exists():
        fsutil.rename(paths.profile, paths.previous)
    fsutil.rename(paths.staging, paths.profile)
    fsutil.fsync_dir(paths.root)
    fsutil.remove_tree(paths.previous)


def _partial_bytes(download: Path) -> int:
    """Bytes the kept partial files already hold (they will not be fetched again)."""
    return sum(p.stat().st_size for p in download.rglob(f"*{PART_SUFFIX}") if p.is_file())


def _check_free_space(root: Path, needed: int, *, free: int | None = None) -> None:
    # Downloads land beside the profile and are renamed into place: no second copy.
    available = shutil.disk_usage(root).free if free is None else free
    if needed > available:
        raise InsufficientSpaceError(str(root), needed, available)


def _retry_logger(log: Log, label: str, what: str) -> Callable[[str, float], None]:
    return lambda answer, delay: log(f"{what} from {label}: {answer}; retrying in {delay:.1f} s")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
