"""Where profile files come from: hub endpoints, an air-gapped copy, or the hub cache.

Every source answers two questions for the pinned commit: which files exist
with which size and hash (:meth:`ModelSource.list_files`), and a local copy of
one of them (:meth:`ModelSource.fetch`). Hash checking is the caller's job, so
it happens the same way whatever the source.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from huggingface_hub import hf_hub_download, try_to_load_from_cache
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
from tqdm import tqdm

from embedding_runtime import read_marker

# `hf download --local-dir` keeps one of these per file: commit, etag, timestamp.
_LOCAL_DIR_METADATA = Path(".cache/huggingface/download")
LIST_TIMEOUT = 30.0


@dataclass(frozen=True)
class RemoteFile:
    """A file of the pinned commit as its source describes it.

    ``sha256`` is the LFS oid; small files kept in git have only their
    ``git_blob_id``. At least one of them is set.
    """

    path: str
    size: int | None
    sha256: str | None = None
    git_blob_id: str | None = None

    @property
    def expected_hash(self) -> str:
        return self.sha256 or self.git_blob_id or ""


class ModelSource(Protocol):
    @property
    def label(self) -> str:
        """How the source is named in logs and errors (never with credentials)."""
        ...

    def list_files(self, paths: Sequence[str]) -> dict[str, RemoteFile]:
        """Describe ``paths`` at the pinned commit; raise when the listing itself fails."""
        ...

    def fetch(self, remote: RemoteFile, download_dir: Path) -> Path:
        """Put a copy of ``remote`` under ``download_dir`` and return its path."""
        ...


class MissingFilesError(LookupError):
    """The source has no (verifiable) copy of some required files at the pinned commit."""


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

    def fetch(self, remote: RemoteFile, download_dir: Path) -> Path:
        # A private hub cache beside the profile, not the user's: it is on the same file
        # system (the blob is renamed into place, never copied) and concurrent downloads
        # do not contend there as they do in local_dir mode. The client retries 429s
        # (honouring Retry-After) and broken bodies itself; RetryPolicy wraps what it gives up on.
        snapshot_entry = hf_hub_download(
            self.repo,
            remote.path,
            revision=self.revision,
            endpoint=self.endpoint,
            cache_dir=download_dir / "hub-cache",
            # Plain tqdm: the client's own bar class stays silent unless its logger is set up.
            tqdm_class=tqdm if self.progress else None,
        )
        # The snapshot entry links to the blob (or is the file where symlinks are unavailable).
        return Path(snapshot_entry).resolve()


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
            hint=f"make the copy with `hf download {self.repo} --revision {self.revision} --local-dir DIR`",
        )
        return found

    def fetch(self, remote: RemoteFile, download_dir: Path) -> Path:
        return _copy_into(self.folder / remote.path, download_dir / remote.path)

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

    def fetch(self, remote: RemoteFile, download_dir: Path) -> Path:
        cached = try_to_load_from_cache(self.repo, remote.path, cache_dir=self.cache_dir, revision=self.revision)
        if not isinstance(cached, str):
            raise MissingFilesError(f"{remote.path} left the cache")
        return _copy_into(Path(cached), download_dir / remote.path)


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


def _copy_into(src: Path, dst: Path) -> Path:
    # A copy, never a link: the source folder and the cache belong to the user.
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".incomplete")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    return dst
