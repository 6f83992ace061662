"""The pipeline configuration: one table in ``pyproject.toml``, read and validated here only.

The model pin (repo, revision, profile id, variants) is checked once, when it
is resolved; every step then carries the :class:`Pin` it was given. Precedence
is command-line flag, then environment (as the CI sets it), then the
``[tool.embedding-pipeline]`` table.

The table's keys (paths are relative to the project root):

| key | required | what it is | default |
| --- | --- | --- | --- |
| ``profile-id`` | yes | the profile the app declares (``register_profile``); the folder's name | |
| ``repo`` | yes | the hub repository of the model (``owner/name``) | |
| ``revision`` | yes | the commit it is pinned to (40 hex digits; no branch or tag) | |
| ``variants`` | no | ``"both"``, ``"fp32"`` or ``"int8"`` | ``"both"`` |
| ``output-root`` | no | where prepared profiles land | ``"data/embedding_models"`` |
| ``model-license`` | no | the model's licence, written into the bundle's notice and SBOM | ``""`` |
| ``tiktoken-encodings`` | no | encodings to warm and bundle | ``["o200k_base"]`` |
| ``tiktoken-cache`` | no | the warmed cache's folder | ``"data/tiktoken_cache"`` |
| ``int8-min-cosine`` | no | verify's floor for int8 against fp32 | ``0.80`` |
| ``app-name`` | yes | the executable's and the app-data folder's name | |
| ``app-entry`` | yes | the app's entry script | |
| ``source-root`` | no | where the app's packages import from (``"src"`` in a src layout) | ``"."`` |
| ``profiles-module`` | no | the app's module that calls ``register_profile`` (imported by the build) | |
| ``pyinstaller-spec`` | no | the app's spec, for ``build-pyinstaller`` | |
| ``python`` | no | the Python the nox sessions build with (``"3.12"``) | ``.python-version``, else 3.11 |

The environment overrides the pin: ``EMBEDDING_MODEL_REPO``, ``EMBEDDING_MODEL_REVISION``,
``EMBEDDING_MODEL_PROFILE_ID`` (as the reusable workflow's ``revision`` input does).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from build_hooks.errors import UsageError
from embedding_runtime.build_api import MODELS_FOLDER, TIKTOKEN_FOLDER, VARIANTS, data_path

__all__ = ["KEYS", "KEY_HELP", "PIN_ENV", "REQUIRED", "TABLE", "Pin", "PipelineConfig", "load_config"]

TABLE = "embedding-pipeline"
"""The table's name: ``[tool.embedding-pipeline]``."""
PIN_ENV = {
    "repo": "EMBEDDING_MODEL_REPO",
    "revision": "EMBEDDING_MODEL_REVISION",
    "profile_id": "EMBEDDING_MODEL_PROFILE_ID",
}
"""Environment variables that override the pin, by pin field (as the CI sets them)."""
# verify-artifact's floor for int8 against fp32 (min cosine over the self-check texts). It is
# the product's promise on every CPU: per-channel int8 of a real MiniLM-class model gives
# 0.97 on AVX2-only and VNNI machines alike, scrambled weights 0.27.
DEFAULT_INT8_MIN_COSINE = 0.80
REQUIRED = "required"
"""A key of :data:`KEYS` without a default: the table must write it."""
KEYS: dict[str, Any] = {
    "profile-id": REQUIRED,
    "repo": REQUIRED,
    "revision": REQUIRED,
    "variants": "both",
    "model-license": "",
    "output-root": data_path(MODELS_FOLDER),
    "tiktoken-encodings": ["o200k_base"],
    "tiktoken-cache": data_path(TIKTOKEN_FOLDER),
    "app-name": REQUIRED,
    "app-entry": REQUIRED,
    "source-root": ".",
    "profiles-module": None,
    "pyinstaller-spec": None,
    "int8-min-cosine": DEFAULT_INT8_MIN_COSINE,
    "python": None,
    "exclude-modules": [],
    "nuitka-bytecode": [],
}
"""Every key of ``[tool.embedding-pipeline]`` with its default (:data:`REQUIRED`: none; ``None``:
left out means the feature is off). Any other key is refused."""
KEY_HELP: dict[str, str] = {
    "profile-id": "the profile the model is prepared as: the compatibility contract the runtime knows "
    "(bump it when vectors change)",
    "repo": "the hub repository, `owner/name`",
    "revision": "the 40-hex commit the model is pinned to",
    "variants": "`fp32`, `int8` or `both`: which model files are prepared and bundled",
    "model-license": "the model's licence (SPDX), written into the bundle's model notice",
    "output-root": "the folder of profile folders prepare-model writes, relative to the project",
    "tiktoken-encodings": "the tiktoken encodings warm-tiktoken caches and the artifact bundles",
    "tiktoken-cache": "the folder of the warmed tiktoken cache, relative to the project",
    "app-name": "the executable's and the artifact folder's name",
    "app-entry": "the app's entry script, relative to the project",
    "source-root": "where the app's packages import from (`src` in a src layout)",
    "profiles-module": "the app's module that declares its `ProfileContract`s (imported by the build)",
    "pyinstaller-spec": "the app's PyInstaller spec (required for `build-pyinstaller`)",
    "int8-min-cosine": "verify's floor for int8 against fp32 vectors of the self-check texts",
    "python": "the Python the nox sessions build with, `3.12` (none: `.python-version`, else 3.11); "
    "`nox --force-python` overrides it for one run",
    "exclude-modules": "modules (and their submodules) the app never imports, left out of both artifacts: "
    "`embedding-pipeline sizes` lists the candidates from the self-check's import audit",
    "nuitka-bytecode": "the app's pure-Python dependencies Nuitka ships as bytecode instead of compiling "
    "them to C (faster cold builds; the app's own code and the runtime are always compiled)",
}
"""What each key of :data:`KEYS` is for, one line each (docs/configuration.md's table is made from both)."""
REVISION_PATTERN = re.compile(r"^[0-9a-f]{40}$")
PROFILE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MODULE_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
REPO_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


@dataclass(frozen=True)
class Pin:
    """The model a build is made from: checked once, then passed from step to step."""

    repo: str
    """The hub repository, ``owner/name``."""
    revision: str
    """The 40-hex commit the model is pinned to."""
    profile_id: str
    """The profile the files are prepared as."""
    variants: tuple[str, ...]
    """``("fp32",)``, ``("int8",)`` or ``("fp32", "int8")``."""

    def __str__(self) -> str:
        return f"{self.repo}@{self.revision[:12]} as {self.profile_id} ({'+'.join(self.variants)})"


@dataclass(frozen=True)
class PipelineConfig:
    """The values of the configuration table, paths resolved against the project root."""

    project_root: Path
    """The folder holding the ``pyproject.toml``."""
    pin: Pin
    """The pin as the table writes it (each step applies its flags and the environment)."""
    output_root: Path
    """``output-root``."""
    model_license: str
    """``model-license``."""
    tiktoken_encodings: tuple[str, ...]
    """``tiktoken-encodings``."""
    tiktoken_cache: Path
    """``tiktoken-cache``."""
    app_name: str
    """``app-name``."""
    app_entry: Path
    """``app-entry``."""
    source_root: Path
    """``source-root``: the project root, or ``src/`` in a src layout."""
    int8_min_cosine: float = DEFAULT_INT8_MIN_COSINE
    """``int8-min-cosine``: verify fails when int8 and fp32 vectors of the self-check texts agree less."""
    profiles_module: str | None = None
    """``profiles-module``: the app's module that declares its profile contracts, imported by the build."""
    pyinstaller_spec: Path | None = None
    """``pyinstaller-spec``."""
    app_version: str | None = None
    """The app's ``[project] version`` (``None``: not written there; its archives say ``unversioned``)."""
    exclude_modules: tuple[str, ...] = ()
    """``exclude-modules``: what the app never imports, left out of its artifacts (with submodules)."""
    nuitka_bytecode: tuple[str, ...] = ()
    """``nuitka-bytecode``: packages Nuitka ships as bytecode, not compiled to C."""


def find_pyproject(start: Path | None = None) -> Path:
    """Return the nearest ``pyproject.toml`` with our table, from ``start`` (cwd) upwards.

    Falls back to the project that holds this package, so the scripts work
    from any working directory.
    """
    here = (start or Path.cwd()).resolve()
    found = project_holding(here) or project_holding(Path(__file__).resolve().parent.parent)
    if found is not None:
        return found
    raise UsageError(f"no pyproject.toml with a [tool.{TABLE}] table found from {here} upwards")


def project_holding(folder: Path) -> Path | None:
    """The ``pyproject.toml`` with our table in ``folder`` or the nearest folder above it."""
    for candidate in (folder / "pyproject.toml" for folder in (folder, *folder.parents)):
        if candidate.is_file() and TABLE in _tool_tables(candidate):
            return candidate
    return None


def load_config(pyproject: Path | None = None) -> PipelineConfig:
    """Read and validate the configuration table of ``pyproject`` (found from the cwd when ``None``)."""
    path = pyproject or find_pyproject()
    table = _tool_tables(path).get(TABLE)
    if not isinstance(table, dict):
        raise UsageError(f"{path} has no [tool.{TABLE}] table")
    root = path.parent
    if unknown := sorted(set(table) - set(KEYS)):
        raise UsageError(
            f"{path}: [tool.{TABLE}] has no key {unknown[0]!r}: the keys are {', '.join(KEYS)} (see CHANGELOG.md"
            " for a renamed one)"
        )
    value = {key: table.get(key, default) for key, default in KEYS.items() if key in table or default != REQUIRED}
    try:
        pin = validated_pin(
            str(value["repo"]), str(value["revision"]), str(value["profile-id"]), str(value["variants"])
        )
        optional = {key: value[key] for key in ("profiles-module", "pyinstaller-spec") if value[key] is not None}
        return PipelineConfig(
            project_root=root,
            pin=pin,
            output_root=root / str(value["output-root"]),
            model_license=str(value["model-license"]),
            tiktoken_encodings=tuple(value["tiktoken-encodings"]),
            tiktoken_cache=root / str(value["tiktoken-cache"]),
            app_name=str(value["app-name"]),
            app_entry=root / str(value["app-entry"]),
            int8_min_cosine=float(value["int8-min-cosine"]),
            source_root=root / str(value["source-root"]),
            profiles_module=str(optional["profiles-module"]) if "profiles-module" in optional else None,
            pyinstaller_spec=root / str(optional["pyinstaller-spec"]) if "pyinstaller-spec" in optional else None,
            app_version=_app_version(path),
            exclude_modules=_module_names(value["exclude-modules"], "exclude-modules"),
            nuitka_bytecode=_module_names(value["nuitka-bytecode"], "nuitka-bytecode"),
        )
    except KeyError as err:
        raise UsageError(f"{path}: [tool.{TABLE}] lacks the key {err.args[0]!r}") from err
    except UsageError as err:
        raise UsageError(f"{path}: [tool.{TABLE}]: {err}") from err


def resolve_pin(
    config: PipelineConfig,
    *,
    repo: str | None = None,
    revision: str | None = None,
    profile_id: str | None = None,
    variants: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Pin:
    """The pin in effect: each field from its flag, else its environment variable, else the table."""
    env = os.environ if env is None else env
    flags = {"repo": repo, "revision": revision, "profile_id": profile_id}
    chosen = {
        key: flag or env.get(PIN_ENV[key], "").strip() or str(getattr(config.pin, key)) for key, flag in flags.items()
    }
    return validated_pin(
        chosen["repo"], chosen["revision"], chosen["profile_id"], variants or "+".join(config.pin.variants)
    )


def validated_pin(repo: str, revision: str, profile_id: str, variants: str) -> Pin:
    """A :class:`Pin`, or :class:`UsageError` naming the first malformed field and the fix."""
    if problem := revision_problem(revision):
        raise UsageError(problem)
    if not REPO_PATTERN.match(repo):
        raise UsageError(f"--repo {repo!r} is not a hub repo id like 'owner/name'")
    if not PROFILE_ID_PATTERN.match(profile_id):
        raise UsageError(
            f"--profile-id {profile_id!r} must be lower-case letters, digits, '.', '_' or '-' "
            "(it becomes a folder name), e.g. local-text-retrieval-v1"
        )
    return Pin(repo, revision, profile_id, parse_variants(variants))


def parse_variants(value: str) -> tuple[str, ...]:
    """``fp32``, ``int8`` or ``both`` (or ``fp32+int8``) to the tuple of variants; :class:`UsageError` otherwise."""
    if value in ("both", "+".join(VARIANTS)):
        return VARIANTS
    if value in VARIANTS:
        return (value,)
    raise UsageError(f"unknown variant {value!r}: pass one of fp32, int8, both")


def revision_problem(revision: str) -> str | None:
    """Why ``revision`` is not an acceptable pin, or ``None`` when it is a 40-hex commit SHA."""
    if REVISION_PATTERN.match(revision):
        return None
    if re.fullmatch(r"[0-9a-fA-F]{40}", revision):
        return f"--revision {revision!r} has upper-case letters: pass the commit SHA in lower case"
    return (
        f"--revision must be a full 40-character lowercase commit SHA, not {revision!r}: "
        "branches, tags and short SHAs can move or be ambiguous; pass the commit id from the repo's history"
    )


def _pyproject(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err}") from err


def _tool_tables(path: Path) -> dict[str, Any]:
    tool = _pyproject(path).get("tool", {})
    return tool if isinstance(tool, dict) else {}


def _module_names(value: Any, key: str) -> tuple[str, ...]:
    """The list ``key`` as dotted module names, or :class:`UsageError` naming the first that is not one."""
    if not isinstance(value, list):
        raise UsageError(f"{key} must be a list of module names, not {value!r}")
    for name in value:
        if not isinstance(name, str) or not MODULE_PATTERN.match(name):
            raise UsageError(f"{key}: {name!r} is not a module name like 'sqlite3' or 'numpy.random'")
    return tuple(dict.fromkeys(value))


def _app_version(path: Path) -> str | None:
    """``[project] version`` when it is written there (a dynamic version is not known before a build)."""
    project = _pyproject(path).get("project", {})
    version = project.get("version") if isinstance(project, dict) else None
    if version is None:
        return None
    if not isinstance(version, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}", version):
        raise UsageError(f"[project] version = {version!r} cannot name an archive: use a PEP 440 version")
    return version
