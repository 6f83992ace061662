"""Skip a rebuild when nothing that goes into an artifact changed.

The stamp is a sha256 over the sources that are compiled or frozen (app,
runtime, build code, spec), the bundled data's records (profile marker,
tiktoken manifest, build info) and the tool versions. It is stored beside the
artifact; a changed input, a missing stamp or a missing artifact means build.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from build_hooks import fsutil
from build_hooks.bundle import MODEL_NOTICE_FILE, BundlePlan
from embedding_runtime import BUILD_INFO_FILE, MANIFEST_NAME, MARKER_NAME

_REPO = Path(__file__).resolve().parent.parent
TOOLS = ("nuitka", "pyinstaller", "pyinstaller-hooks-contrib", "onnxruntime", "tokenizers", "tiktoken", "numpy")


def inputs_digest(plan: BundlePlan, builder: str, options: Sequence[str]) -> str:
    digest = hashlib.sha256(f"{builder}\0{sys.version}\0".encode())
    for option in options:
        digest.update(option.encode() + b"\0")
    for tool in TOOLS:
        digest.update(f"{tool}={_version(tool)}\0".encode())
    for path in _input_files(plan):
        digest.update(path.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"absent")
    return digest.hexdigest()


def stamp_path(dist: Path) -> Path:
    return dist.with_name(dist.name + ".inputs-sha256")


def is_up_to_date(dist: Path, digest: str) -> bool:
    stamp = stamp_path(dist)
    return dist.is_dir() and stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == digest


def write_stamp(dist: Path, digest: str) -> None:
    fsutil.atomic_write_bytes(stamp_path(dist), digest.encode() + b"\n")


def _input_files(plan: BundlePlan) -> Iterable[Path]:
    sources = [plan.config.app_entry, _REPO / "specs" / "launcher.spec"]
    for package in ("embedding_runtime", "build_hooks"):
        sources += sorted((_REPO / package).rglob("*.py"))
    # The records stand for the data they list (hashing a model here would cost a whole read).
    data = [plan.profile_dir / MARKER_NAME, plan.config.tiktoken_cache / MANIFEST_NAME]
    data += [plan.generated_dir / name for name in (BUILD_INFO_FILE, MODEL_NOTICE_FILE)]
    return [*sources, *data]


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"
