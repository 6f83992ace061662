"""What a build puts into the artifact's ``data/``: the prepared profile, read once, the refusals,
and the files the build writes itself.

:func:`plan_contents` is the plan's content side. It reads the profile folder's marker and the
app's profile contract once (:class:`PreparedProfile`), refuses a build that must not start
(:class:`PreflightError`, every reason with its fix), and lists every data file with the size
and sha256 it must arrive with: the model files as the marker records them, the tiktoken cache
as its manifest does, and the generated files (provenance, the model's licence notice, and the
probe record the runtime's canary checks). Importing it loads no download client.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from build_hooks.config import PipelineConfig
from build_hooks.errors import PreflightError, UsageError
from build_hooks.freezing.provenance import interpreter_facts, source_revision
from build_hooks.freezing.selection import bytecode_problems, exclusion_problems
from build_hooks.freezing.target import WITHOUT_VECTORS_ENV, Builder, Target
from embedding_runtime import EmbeddingService, ModelRoot, ProfileContract, UnknownProfileError
from embedding_runtime.build_api import (
    BUILD_INFO_FILE,
    BUILD_INFO_SCHEMA,
    MARKER_NAME,
    MODELS_FOLDER,
    PROBE_RECORD_FILE,
    PROBE_TEXTS,
    TIKTOKEN_FOLDER,
    TIKTOKEN_MANIFEST_NAME,
    FileDigest,
    PreparedMarker,
    ProbeRecord,
    data_path,
    encoding_problems,
    folder_problem,
    get_profile,
    read_marker,
    read_tiktoken_manifest,
)

MODEL_NOTICE_FILE = "MODEL-NOTICE.txt"


@dataclass(frozen=True)
class DataFile(FileDigest):
    """A file of the artifact's ``data/``: where it lands in the data root, and what is copied there."""

    dest: str  # POSIX path in the data root: data/embedding_models/<profile>/tokenizer.json
    source: Path


@dataclass(frozen=True)
class PreparedProfile:
    """The profile a build ships, read once per plan: its marker and the app's contract for it."""

    folder: Path
    marker: PreparedMarker | None
    """``None`` for a build without vectors, a missing folder, or no valid marker."""
    contract: ProfileContract | None
    """``None`` when the profile is not declared; :attr:`contract_problem` says why."""
    contract_problem: str | None = None


@dataclass(frozen=True)
class PlanContents:
    """Every data file of the artifact, and the bytes of those the build generates (by destination)."""

    data: tuple[DataFile, ...]
    generated: Mapping[str, bytes]


def plan_contents(
    target: Target, builder: Builder, generated_dir: Path, *, importable: Callable[[str], str | None] | None = None
) -> PlanContents:
    """What ``builder``'s build of ``target`` puts in ``data/``, its generated files to be written to
    ``generated_dir``; :class:`PreflightError` when the build must not start."""
    profile = read_profile(target)
    if problems := preflight_problems(target, profile, importable=importable):
        raise PreflightError(problems)
    generated = {data_path(name): content for name, content in generated_files(target, profile, builder).items()}
    data = [*_profile_data(target, profile), *_tiktoken_data(target)]
    data += [
        _bytes_file(dest, content, generated_dir / PurePosixPath(dest).name) for dest, content in generated.items()
    ]
    return PlanContents(tuple(sorted(data, key=lambda f: f.dest)), generated)


def read_profile(target: Target) -> PreparedProfile:
    """The prepared profile of ``target``, read once: its marker, and its contract after importing
    the app's ``profiles-module`` (never raises: a problem is recorded for the refusal)."""
    folder = target.profile_dir
    marker = read_marker(folder) if target.with_vectors and folder.is_dir() else None
    try:
        return PreparedProfile(folder, marker, profile_contract(target.config, target.pin.profile_id))
    except UnknownProfileError:
        problem = (
            f"profile {target.pin.profile_id} is not declared: set profiles-module in [tool.embedding-pipeline] "
            "to the app's module that calls register_profile"
        )
    except UsageError as err:
        problem = str(err)
    return PreparedProfile(folder, marker, None, problem)


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


def preflight_problems(
    target: Target,
    profile: PreparedProfile | None = None,
    *,
    importable: Callable[[str], str | None] | None = None,
) -> list[str]:
    """Every reason not to build, each with the fix; empty when the build may start."""
    importable = importable or _import_problem
    profile = profile or read_profile(target)
    problems = [profile.contract_problem] if profile.contract_problem else []
    models_root = target.config.output_root
    if target.with_vectors:
        if models_root.is_dir():
            for package in ("onnxruntime", "tokenizers"):
                if why := importable(package):
                    problems.append(
                        f"{models_root} is present but {package} cannot be collected ({why}): weights without "
                        f"the runtime that loads them would silently disable vectors; install the build group"
                    )
        problems += _profile_problems(target, profile)
    problems += exclusion_problems(target.config.exclude_modules)
    problems += bytecode_problems(target.config.nuitka_bytecode)
    cache = target.config.tiktoken_cache
    for encoding, found in encoding_problems(cache, target.config.tiktoken_encodings).items():
        problems += [f"tiktoken cache: {encoding}: {p}; run `nox -s warm-tiktoken`" for p in found]
    return problems


def generated_files(target: Target, profile: PreparedProfile, builder: Builder) -> dict[str, bytes]:
    """The data files a build writes itself, by name in ``data/``: provenance (``build-info.json``),
    the model's licence notice, and the probe record the runtime's canary checks (with vectors)."""
    info = json.dumps(build_info(target, profile, builder), indent=2).encode() + b"\n"
    files = {BUILD_INFO_FILE: info, MODEL_NOTICE_FILE: model_notice(target).encode()}
    if (record := probe_record(target, profile)) is not None:
        files[PROBE_RECORD_FILE] = record.to_bytes()
    return files


def build_info(target: Target, profile: PreparedProfile, builder: Builder) -> dict[str, Any]:
    """The provenance record ``data/build-info.json``: what this artifact was built from."""
    marker = profile.marker
    return {
        "schema": BUILD_INFO_SCHEMA,
        "builder": builder,
        "app_name": target.config.app_name,
        "profile_id": target.pin.profile_id,
        "with_vectors": target.with_vectors,
        "variants": list(marker.variants) if marker else [],
        "tiktoken_encodings": list(target.config.tiktoken_encodings),
        "app_version": target.config.app_version,
        # What the build left out (exclude-modules): the self-check reports an attempt to import one.
        "excluded_modules": list(target.config.exclude_modules),
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


def probe_record(target: Target, profile: PreparedProfile) -> ProbeRecord | None:
    """The canary the artifact's runtime checks each folder against: fp32 vectors of the probe
    texts from the prepared profile, and how well the bundled int8 agrees with them here (the
    runtime holds an int8 folder to that, less a margin for other CPUs' kernels). On one thread,
    so that two builds write identical bytes."""
    if not target.with_vectors or profile.contract is None:
        return None
    contract, marker = profile.contract, profile.marker
    roots = [ModelRoot(target.config.output_root, "source")]

    def vectors(variant: str) -> Any:
        service = EmbeddingService(contract, roots=roots, env={}, variant=variant, threads=1)
        return service.embed_documents(list(PROBE_TEXTS))

    fp32 = vectors("fp32")
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


def _profile_problems(target: Target, profile: PreparedProfile) -> list[str]:
    folder, pin, marker = profile.folder, target.pin, profile.marker
    fix = "run `nox -s prepare-model`"

    def fix_with(*args: str) -> str:  # a step's own flags come after nox's `--`
        return f"run `nox -s prepare-model -- {' '.join(args)}`"

    if not folder.is_dir():
        opt_out = f"(or set {WITHOUT_VECTORS_ENV}=1 to build without vectors)"
        return [f"the model profile {folder} is missing: {fix} {opt_out}"]
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
        # checks it against the plan (build_hooks.freezing.manifest.data_problems), so the model is hashed once.
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


def _profile_data(target: Target, profile: PreparedProfile) -> Iterator[DataFile]:
    if profile.marker is None:
        return
    base = data_path(MODELS_FOLDER, target.pin.profile_id)
    for name, entry in profile.marker.files.items():
        yield DataFile(entry.size, entry.sha256, f"{base}/{name}", profile.folder / name)
    yield _disk_file(f"{base}/{MARKER_NAME}", profile.folder / MARKER_NAME)


def _tiktoken_data(target: Target) -> Iterator[DataFile]:
    cache = target.config.tiktoken_cache
    for blob in read_tiktoken_manifest(cache) or []:
        yield DataFile(blob.size, blob.sha256, data_path(TIKTOKEN_FOLDER, blob.file), cache / blob.file)
    yield _disk_file(data_path(TIKTOKEN_FOLDER, TIKTOKEN_MANIFEST_NAME), cache / TIKTOKEN_MANIFEST_NAME)


def _disk_file(dest: str, source: Path) -> DataFile:
    digest = FileDigest.of(source)
    return DataFile(digest.size, digest.sha256, dest, source)


def _bytes_file(dest: str, content: bytes, source: Path) -> DataFile:
    return DataFile(len(content), hashlib.sha256(content).hexdigest(), dest, source)
