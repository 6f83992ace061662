"""The pipeline configuration: one table in ``pyproject.toml``, read here only.

Precedence for the model pin is command-line flag, then environment (as the
CI sets it), then the ``[tool.embedding-pipeline]`` table.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from build_hooks.errors import UsageError

TABLE = "embedding-pipeline"
# verify-artifact's floor for int8 against fp32 (min cosine over the self-check texts). It is
# the product's promise on every CPU: per-channel int8 of a real MiniLM-class model gives
# 0.97 on AVX2-only and VNNI machines alike, scrambled weights 0.27.
DEFAULT_INT8_MIN_COSINE = 0.80
# Environment variables the CI uses to override the pin, by config key.
PIN_ENV = {
    "repo": "EMBEDDING_MODEL_REPO",
    "revision": "EMBEDDING_MODEL_REVISION",
    "profile_id": "EMBEDDING_MODEL_PROFILE_ID",
}


@dataclass(frozen=True)
class PipelineConfig:
    """The values of the configuration table, paths resolved against the project root."""

    project_root: Path
    profile_id: str
    repo: str
    revision: str
    variants: str
    output_root: Path
    model_license: str
    tiktoken_encodings: tuple[str, ...]
    tiktoken_cache: Path
    app_name: str
    app_entry: Path
    # verify-artifact fails when int8 and fp32 vectors of the self-check texts agree less.
    int8_min_cosine: float = DEFAULT_INT8_MIN_COSINE


def find_pyproject(start: Path | None = None) -> Path:
    """Return the nearest ``pyproject.toml`` with our table, from ``start`` (cwd) upwards.

    Falls back to the project that holds this package, so the scripts work
    from any working directory.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents, Path(__file__).resolve().parent.parent):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and TABLE in _tool_tables(candidate):
            return candidate
    raise UsageError(f"no pyproject.toml with a [tool.{TABLE}] table found from {here} upwards")


def load_config(pyproject: Path | None = None) -> PipelineConfig:
    """Read the configuration table of ``pyproject`` (found from the cwd when ``None``)."""
    path = pyproject or find_pyproject()
    table = _tool_tables(path).get(TABLE)
    if not isinstance(table, dict):
        raise UsageError(f"{path} has no [tool.{TABLE}] table")
    root = path.parent
    try:
        return PipelineConfig(
            project_root=root,
            profile_id=str(table["profile-id"]),
            repo=str(table["repo"]),
            revision=str(table["revision"]),
            variants=str(table.get("variants", "both")),
            output_root=root / str(table.get("output-root", "data/embedding_models")),
            model_license=str(table.get("model-license", "")),
            tiktoken_encodings=tuple(table.get("tiktoken-encodings", ["o200k_base"])),
            tiktoken_cache=root / str(table.get("tiktoken-cache", "data/tiktoken_cache")),
            app_name=str(table["app-name"]),
            app_entry=root / str(table["app-entry"]),
            int8_min_cosine=float(table.get("int8-min-cosine", DEFAULT_INT8_MIN_COSINE)),
        )
    except KeyError as err:
        raise UsageError(f"{path}: [tool.{TABLE}] lacks the key {err.args[0]!r}") from err


def pick(key: str, flag: str | None, config: PipelineConfig, env: Mapping[str, str] | None = None) -> str:
    """Return the value of a pin ``key``: ``flag`` if given, else its env variable, else the table."""
    if flag:
        return flag
    env = os.environ if env is None else env
    from_env = env.get(PIN_ENV[key], "").strip()
    return from_env or str(getattr(config, key))


def _tool_tables(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err}") from err
    tool = data.get("tool", {})
    return tool if isinstance(tool, dict) else {}
