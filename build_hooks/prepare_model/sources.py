"""Where profile files come from: hub endpoints, an air-gapped copy, or the hub cache.

Every source answers two questions for the pinned commit: which files exist
with which size and hash (:meth:`ModelSource.list_files`), and the bytes of one
of them from a given offset on (:meth:`ModelSource.fetch`, written into a
resumable partial file). Hashing is the partial file's job and checking is the
caller's, so both happen the same way whatever the source.

Transfer path: every hub endpoint, the official hub included, is read over
plain HTTP from its resolve URL, never through Xet (``hf_xet``), even where the
server advertises it. Plain HTTP is what mirrors and local endpoints speak,
and it is the path on which a download resumes across runs (a Range request
from the partial file), is retried by one policy, and is hashed as it arrives;
the hub serves Xet-backed files on it too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from huggingface_hub import constants, hf_hub_url, try_to_load_from_cache
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
from tqdm import tqdm

from embedding_runtime.build_api import read_marker

# `hf download --local-dir` keeps one of these per file: commit, etag, timestamp.
_LOCAL_DIR_METADATA = Path(".cache/huggingface/download")
LIST_TIMEOUT = 30.0
DOWNLOAD_TIMEOUT = float(constants.HF_HUB_DOWNLOAD_TIMEOUT)  # seconds without a byte (HF_HUB_DOWNLOAD_TIMEOUT)
TRANSFER_PATH = "plain HTTP"  # from the resolve URL, resumed with Range
_COPY_CHUNK = 8 * 2**20


@dataclass(frozen=True)
class RemoteFile:
    """A file of the pinned commit as its source describes it.

    ``sha256`` is the LFS oid; small files kept in git have only their
    ``git_blob_id``. At least one of them is set.
    """

    path: str
    size: int
    sha256: str | None = None
    git_blob_id: str | None = None

    @property
    def expected_hash(self) -> str:
        return self.sha256 or self.git_blob_id or ""


class Receiver(Protocol):
    """Where a source writes a file's bytes (prepare's resumable partial file): it keeps the
    bytes received so far, and hashes them as they arrive."""

    @property
    def offset(self) -> int:
        """Bytes received so far: a source sends the rest, from here on."""
        ...

    def write(self, data: bytes | memoryview) -> int: ...

    def restart(self) -> None:
        """Forget the bytes received so far (a source that cannot send only the rest)."""
        ...


class ModelSource(Protocol):
    @property
    def label(self) -> str:
        """How the source is named in logs and errors (never with credentials)."""
        ...

    @property
    def transfer(self) -> str:
        """How the bytes travel, logged with every file fetched."""
        ...

    def list_files(self, paths: Sequence[str]) -> dict[str, RemoteFile]:
        """Describe ``paths`` at the pinned commit; raise when the listing itself fails."""
        ...

    def fetch(self, remote: RemoteFile, into: Receiver) -> None:
        """Write the bytes of ``remote`` from ``into.offset`` on into ``into``."""
        ...


class MissingFilesError(LookupError):
    """The source has no (verifiable) copy of some required files at the pinned commit."""


class IncompleteBodyError(OSError):
    """A download ended before the published size (worth retrying: the next attempt resumes)."""


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face Hub compatible endpoint, read with the huggingface_hub client."""

    endpoint: str
    repo: str
    revision: str
    progress: bool = False  # draw a progress bar per file (for a terminal)

    @property
    def label(self) -> str:
        return redact_url(self.endpoint)

    @property
    def transfer(self) -> str:
        return TRANSFER_PATH

    def list_files(self, paths: Sequence[str]) -> dict[str, RemoteFile]:
        wanted = set(paths)
        found: dict[str, RemoteFile] = {}
        for item in self._tree():
            if item.get("type") == "file" and item.get("path") in wanted:
                found[item["path"]] = _remote_from_tree(item)
        _require_all(paths, found, f"{self.repo}@{self.revision}")
        return found

    def _tree(self) -> Iterator[dict[str, Any]]:
        # One request per page and no retries of the client's own (HfApi.list_repo_tree
        # retries 5xx internally, which multiplied with ours): RetryPolicy is the only policy.
        # A 40-hex revision needs no revision lookup before the listing.
        url: str | None = f"{self.endpoint}/api/models/{self.repo}/tree/{quote(self.revision, safe='')}"
        params: dict[str, str] | None = {"recursive": "true", "expand": "false"}
        while url is not None:
            response = get_session().get(url, params=params, headers=build_hf_headers(), timeout=LIST_TIMEOUT)
            hf_raise_for_status(response)
            yield from response.json()
            url, params = response.links.get("next", {}).get("url"), None

    def fetch(self, remote: RemoteFile, into: Receiver) -> None:
        # One GET on the client's session (its proxies, headers and token); never Xet, see the
        # module docstring. Retries are RetryPolicy's alone: each attempt resumes from the partial.
        if into.offset == remote.size:
            return  # a killed run received it all; the caller checks the hash as for any file
        # Identity: a Range must count the file's own bytes, not a gzip encoding of them.
        headers = {**build_hf_headers(), "Accept-Encoding": "identity"}
        if into.offset:
            headers["Range"] = f"bytes={into.offset}-"
        url = hf_hub_url(self.repo, remote.path, revision=self.revision, endpoint=self.endpoint)
        session = get_session()
        with (
            session.stream("GET", url, headers=headers, timeout=DOWNLOAD_TIMEOUT, follow_redirects=True) as answer,
            tqdm(
                total=remote.size, initial=into.offset, desc=remote.path, unit="B", unit_scale=True,
                disable=not self.progress,
            ) as bar,
        ):  # fmt: skip
            hf_raise_for_status(answer)
            if into.offset and answer.status_code != 206:
                into.restart()  # the server ignored the Range and sends the whole file
                bar.reset()
            for chunk in answer.iter_bytes():  # as it arrives, so a kill loses almost nothing
                into.write(chunk)
                bar.update(len(chunk))
        if into.offset < remote.size:  # (a longer body fails the caller's size check, and is discarded)
            raise IncompleteBodyError(f"the body ended at byte {into.offset} of {remote.size}")


@dataclass(frozen=True)
class LocalFolderSource:
    """An air-gapped copy of the repo files, with the hashes to check them by.

    The hashes come from the per-file metadata that ``hf download --local-dir``
    writes, or from the ``.prepared.json`` of a profile prepared elsewhere;
    either must name the pinned commit. Files without such a record are refused.
    """

    folder: Path
    repo: str
    revision: str

    @property
    def label(self) -> str:
        return str(self.folder)

    @property
    def transfer(self) -> str:
        return "file copy"

    def list_files(self, paths: Sequence[str]) -> dict[str, RemoteFile]:
        marker = read_marker(self.folder)
        trusted_marker = marker if marker and (marker.repo, marker.revision) == (self.repo, self.revision) else None
        found: dict[str, RemoteFile] = {}
        for path in paths:
            local = self.folder / path
            if not local.is_file() or local.is_symlink():
                continue
            if trusted_marker and path in trusted_marker.files:
                entry = trusted_marker.files[path]
                found[path] = RemoteFile(path, entry.size, sha256=entry.sha256)
            elif (etag := self._etag_for(path)) is not None:
                found[path] = _remote_from_etag(path, local.stat().st_size, etag)
        _require_all(
            paths,
            found,
            f"{self.repo}@{self.revision} with hash records",
            hint=(
                f"make the copy with `hf download {self.repo} --revision {self.revision} --local-dir DIR`;"
                " offline, from a hub mirror: `HF_ENDPOINT=<mirror URL> hf download ...`"
            ),
        )
        return found

    def fetch(self, remote: RemoteFile, into: Receiver) -> None:
        _copy_into(self.folder / remote.path, into)

    def _etag_for(self, path: str) -> str | None:
        meta = self.folder / _LOCAL_DIR_METADATA / f"{path}.metadata"
        try:
            commit, etag, *_ = meta.read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError):
            return None
        return etag.strip().strip('"') if commit.strip() == self.revision else None


@dataclass(frozen=True)
class HubCacheSource:
    """The local huggingface_hub cache (offline mode); no network request is made.

    The cache names each blob by its etag (sha256 for LFS files, git blob id
    otherwise), which is what a copy is checked against. Where the cache could
    not use symlinks (Windows without developer mode) that name is lost and the
    file cannot be verified, so it is refused.
    """

    repo: str
    revision: str
    cache_dir: Path | None = None

    @property
    def label(self) -> str:
        return "huggingface_hub cache" + (f" {self.cache_dir}" if self.cache_dir else "")

    @property
    def transfer(self) -> str:
        return "file copy"

    def list_files(self, paths: Sequence[str]) -> dict[str, RemoteFile]:
        found: dict[str, RemoteFile] = {}
        for path in paths:
            cached = try_to_load_from_cache(self.repo, path, cache_dir=self.cache_dir, revision=self.revision)
            if not isinstance(cached, str):
                continue
            snapshot_file = Path(cached)
            if not snapshot_file.is_symlink():
                continue
            blob = snapshot_file.resolve()
            found[path] = _remote_from_etag(path, blob.stat().st_size, blob.name)
        _require_all(
            paths,
            found,
            f"{self.repo}@{self.revision} in the cache",
            hint="download it once with network access, or pass --source DIR",
        )
        return found

    def fetch(self, remote: RemoteFile, into: Receiver) -> None:
        cached = try_to_load_from_cache(self.repo, remote.path, cache_dir=self.cache_dir, revision=self.revision)
        if not isinstance(cached, str):
            raise MissingFilesError(f"{remote.path} left the cache")
        _copy_into(Path(cached), into)


def redact_url(url: str) -> str:
    """Drop credentials from ``url`` so it can be printed."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _remote_from_tree(entry: dict[str, Any]) -> RemoteFile:
    path, lfs = str(entry["path"]), entry.get("lfs")
    if lfs:
        # For LFS files the git oid hashes the pointer, not the content: only sha256 counts.
        return RemoteFile(path, int(lfs["size"]), sha256=str(lfs["oid"]))
    return RemoteFile(path, int(entry["size"]), git_blob_id=str(entry["oid"]))


def _remote_from_etag(path: str, size: int, etag: str) -> RemoteFile:
    if len(etag) == 64:
        return RemoteFile(path, size, sha256=etag)
    return RemoteFile(path, size, git_blob_id=etag)


def _require_all(paths: Sequence[str], found: dict[str, RemoteFile], where: str, hint: str = "") -> None:
    missing = [p for p in paths if p not in found]
    if missing:
        shown = ", ".join(missing[:3]) + (f" … ({len(missing) - 3} more)" if len(missing) > 3 else "")
        raise MissingFilesError(f"{where} lacks {shown}" + (f" ({hint})" if hint else ""))


def _copy_into(src: Path, into: Receiver) -> None:
    # A copy, never a link: the source folder and the cache belong to the user.
    buf = bytearray(_COPY_CHUNK)
    view = memoryview(buf)
    with src.open("rb", buffering=0) as fh:
        fh.seek(into.offset)
        while n := fh.readinto(buf):
            into.write(view[:n])
