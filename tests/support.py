"""Constants and helpers the tests share (conftest.py holds only fixtures)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from build_hooks.config import parse_variants
from embedding_runtime.build_api import MARKER_NAME, files_for_variants, read_marker

REPO_ROOT = Path(__file__).resolve().parent.parent
NETGUARD = Path(__file__).resolve().parent / "netguard"
WHEELHOUSE = REPO_ROOT / "build" / "wheelhouse"  # `nox -s tests` fetches it before pytest
REPO_ID = "acme/tiny-embedder"
REVISION_A = "a" * 8 + "0123456789abcdef0123456789abcdef"
REVISION_B = "b" * 8 + "0123456789abcdef0123456789abcdef"
PROFILE_ID = "local-text-retrieval-v1"
# Environment that would let a test leak into (or read from) the developer's setup.
LEAKY_ENV = (
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HF_HUB_OFFLINE",
    "HF_HUB_CACHE",
    "EMBEDDING_MODEL_REPO",
    "EMBEDDING_MODEL_REVISION",
    "EMBEDDING_MODEL_PROFILE_ID",
    "EMBEDDING_MODEL_ENDPOINTS",
)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process: loopback-only network, isolated hub cache."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_ENV and not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(NETGUARD), str(REPO_ROOT)])
    env.update(extra or {})
    return env


CONSOLE_SCRIPT = Path(sys.executable).parent / "embedding-pipeline"


def pipeline(root: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """``embedding-pipeline ARGS`` from an app's project root, as its noxfile's sessions run it."""
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args], cwd=root, env=child_env(), capture_output=True, text=True, timeout=timeout
    )


def run_prepare_cli(args: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run scripts/prepare_embedding_model.py as a user would, in a loopback-only child."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "prepare_embedding_model.py"), *args],
        cwd=REPO_ROOT,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=300,
    )


SEED_LAYOUT = {
    "tokenizer.json",
    "onnx/model.onnx",
    "onnx/model.onnx_data",
    "onnx/model_quantized.onnx",
    "onnx/model_quantized.onnx_data",
    MARKER_NAME,
}


def profile_listing(root: Path) -> set[str]:
    profile = root / PROFILE_ID
    return {p.relative_to(profile).as_posix() for p in profile.rglob("*") if p.is_file()}


def assert_profile_matches(root: Path, files: dict[str, bytes], variants: str = "both") -> None:
    """The profile holds exactly the variant's files, byte for byte, and a marker that says so."""
    expected = set(files_for_variants(parse_variants(variants)))
    assert profile_listing(root) == expected | {MARKER_NAME}
    for path in expected:
        assert (root / PROFILE_ID / path).read_bytes() == files[path], f"{path} differs from the hub's"
    marker = read_marker(root / PROFILE_ID)
    assert marker is not None, "the profile has no valid marker"
    assert set(marker.files) == expected
    for path in expected:
        assert marker.files[path].sha256 == hashlib.sha256(files[path]).hexdigest()


@contextmanager
def tmpfs(path: Path, size: str, *options: str) -> Iterator[Path]:
    """A small real file system (root only, as in CI) to fill up or make read-only."""
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join([f"size={size}", *options])
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)
