"""A throwaway project for `nox -s demo`: its own pin, a generated model, a real tiktoken file.

The model source is laid out as `hf download --local-dir` leaves it (files plus
per-file commit and etag records), so prepare-model's --source checks it the
same way it checks any air-gapped copy.

    python -m tests.demo_project build/demo
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from tests.artifacts import ARTIFACT_SPEC, O200K_GZ, Project, write_pyproject
from tests.fixture_model import write_fixture_repo

LOCAL_DIR_METADATA = Path(".cache/huggingface/download")


def write_local_dir_metadata(folder: Path, revision: str) -> None:
    """Per-file records as huggingface_hub's local_dir download writes them: commit, etag, time."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        data = path.read_bytes()
        lfs = path.suffix in (".onnx", ".onnx_data")
        etag = hashlib.sha256(data).hexdigest() if lfs else _git_blob_id(data)
        record = folder / LOCAL_DIR_METADATA / f"{path.relative_to(folder).as_posix()}.metadata"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(f"{revision}\n{etag}\n0\n")


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def main(argv: list[str]) -> int:
    from tests.artifacts import ARTIFACT_REVISION

    root = Path(argv[0]) if argv else Path("build/demo")
    project = Project(root)
    root.mkdir(parents=True, exist_ok=True)
    write_pyproject(project)
    source = root / "model-source"
    if not (source / "tokenizer.json").is_file():
        write_fixture_repo(source, ARTIFACT_SPEC)
        write_local_dir_metadata(source, ARTIFACT_REVISION)
    shutil.copyfile(O200K_GZ, root / "o200k_base.tiktoken.gz")
    print(f"demo project ready in {root}: model source {source}, tiktoken file {root / 'o200k_base.tiktoken.gz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
