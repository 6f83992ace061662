"""One build's plan, made once: what goes into the artifact, and every input its up-to-date check hashes.

:func:`make_plan` checks the target (:class:`PreflightError`) and resolves, once,
every data file the artifact must hold with the size and sha256 it must arrive
with (the model files as the profile's marker records them, the tiktoken cache
as its manifest does, and the files the build generates: provenance, licence
notice, probe record), and every input of the build, each with its own digest.
:func:`write_plan` writes the generated files and the plan itself
(``build/<app>.<builder>.plan.json``); the freezers read the plan, never the
disk again: the PyInstaller spec through ``-- --plan FILE``, Nuitka through the
options made from it. verify makes the plan anew and writes nothing.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, cast

import build_hooks
import embedding_runtime
from build_hooks import fsutil
from build_hooks.bundle import BUILDERS, Builder, Target, generated_files, preflight_problems
from build_hooks.config import Pin, PipelineConfig, load_config
from build_hooks.errors import PreflightError, UsageError
from embedding_runtime.build_api import (
    MARKER_NAME,
    MODELS_FOLDER,
    TIKTOKEN_FOLDER,
    TIKTOKEN_MANIFEST_NAME,
    FileDigest,
    data_path,
    read_json_record,
    read_marker,
    read_tiktoken_manifest,
    sha256_file,
)

PLAN_SCHEMA = 1
SUITE = "desktop-embedding-pipeline"
# Tools whose version changes what a build makes.
TOOLS = ("nuitka", "pyinstaller", "pyinstaller-hooks-contrib", "onnxruntime", "tokenizers", "tiktoken", "numpy")
# Folders under a source root that hold none of the app's source: outputs, data, caches, environments
# (names starting with a dot, .nox and .venv among them, are skipped too).
_CONFIG = "config "  # the inputs named after a key of pyproject.toml


@dataclass(frozen=True)
class DataFile(FileDigest):
    """A file of the artifact's ``data/``: where it lands in the data root, and what is copied there."""

    dest: str  # POSIX path in the data root: data/embedding_models/<profile>/tokenizer.json
    source: Path


@dataclass(frozen=True)
class BuildPlan:
    """Everything one build of one app needs, resolved once (see the module docstring)."""

    target: Target
    builder: Builder
    dist: Path
    data: tuple[DataFile, ...]
    # Input name -> its digest (or its version, for tools): the up-to-date stamp compares these one by one.
    inputs: Mapping[str, str]
    # The bytes of the generated data files, by destination (only in the plan that make_plan returned).
    generated: Mapping[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    @property
    def pin(self) -> Pin:
        return self.target.pin

    def relocated(self, dist: Path, generated_dir: Path) -> BuildPlan:
        """The same plan building into ``dist``, its generated files written to ``generated_dir`` (by
        :func:`write_plan`): verify's re-run of a freezer, never beside the build's own."""
        data = tuple(
            replace(f, source=generated_dir / PurePosixPath(f.dest).name) if f.dest in self.generated else f
            for f in self.data
        )
        return replace(self, dist=dist, data=data)

    def pyinstaller_datas(self) -> list[tuple[str, str]]:
        """``Analysis(datas=...)``: (file, destination folder) pairs, file by file."""
        return [(str(f.source), str(PurePosixPath(f.dest).parent)) for f in self.data]

    def to_json(self) -> dict[str, Any]:
        config = self.target.config
        return {
            "schema": PLAN_SCHEMA,
            "builder": self.builder,
            "pyproject": str(config.project_root / "pyproject.toml"),
            "pin": {
                **{k: getattr(self.pin, k) for k in ("repo", "revision", "profile_id")},
                "variants": list(self.pin.variants),
            },
            "with_vectors": self.target.with_vectors,
            "dist": str(self.dist),
            "data": [{"dest": f.dest, "source": str(f.source), "size": f.size, "sha256": f.sha256} for f in self.data],
            "inputs": dict(self.inputs),
        }


def make_plan(
    target: Target,
    builder: Builder,
    *,
    dist: Path | None = None,
    options: Sequence[str] = (),
    generated_dir: Path | None = None,
) -> BuildPlan:
    """The plan of ``builder``'s build of ``target`` into ``dist`` (default: the project's
    ``dist/<builder>/`` folder): :class:`PreflightError` when it must not be built.

    ``options`` are what the user passes to the freezer besides what the plan itself sets;
    ``generated_dir`` is where the generated data files are to be written (default: the
    build's, :meth:`Target.generated_dir`; verify writes its own elsewhere).
    """
    if problems := preflight_problems(target):
        raise PreflightError(problems)
    folder = generated_dir or target.generated_dir(builder)
    generated = {data_path(name): content for name, content in generated_files(target, builder).items()}
    data = [*_profile_data(target), *_tiktoken_data(target)]
    data += [_bytes_file(dest, content, folder / PurePosixPath(dest).name) for dest, content in generated.items()]
    data.sort(key=lambda f: f.dest)
    inputs = build_inputs(target, builder, data, options)
    return BuildPlan(target, builder, dist or target.dist_dir(builder), tuple(data), inputs, generated)


def write_plan(plan: BuildPlan, path: Path | None = None) -> Path:
    """Write the generated data files (those that changed, where the plan says they are) and the plan
    file (default: :meth:`Target.plan_path`); the plan file's path."""
    sources = {f.dest: f.source for f in plan.data}
    wanted = {sources[dest]: content for dest, content in plan.generated.items()}
    for folder in {source.parent for source in wanted}:
        for stale in (p for p in folder.glob("*") if p.is_file() and p not in wanted):
            stale.unlink()  # a probe record left by a build with vectors, when this one has none
    for source, content in wanted.items():
        if not source.is_file() or source.read_bytes() != content:
            fsutil.atomic_write_bytes(source, content)
    path = path or plan.target.plan_path(plan.builder)
    fsutil.atomic_write_bytes(path, json.dumps(plan.to_json(), indent=1, sort_keys=True).encode() + b"\n")
    return path


def read_plan(path: Path) -> BuildPlan:
    """The plan written to ``path``; :class:`UsageError` when it is not one, or older than its project's
    configuration (then the build step that wrote it must run again)."""
    raw = read_json_record(path, 64 * 2**20)
    try:
        if not isinstance(raw, dict) or raw.get("schema") != PLAN_SCHEMA or raw.get("builder") not in BUILDERS:
            raise ValueError(f"not a schema-{PLAN_SCHEMA} build plan")
        config = load_config(Path(raw["pyproject"]))
        pin = Pin(**{**raw["pin"], "variants": tuple(raw["pin"]["variants"])})
        data = tuple(DataFile(int(f["size"]), str(f["sha256"]), str(f["dest"]), Path(f["source"])) for f in raw["data"])
        inputs = {str(k): str(v) for k, v in raw["inputs"].items()}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{path} is not a build plan ({err}): run the build step, which writes it") from err
    recorded = {k: v for k, v in inputs.items() if k.startswith(_CONFIG)}
    if changed := sorted(k for k, v in config_inputs(config).items() ^ recorded.items()):
        keys = ", ".join(dict.fromkeys(k.removeprefix(_CONFIG) for k in changed))
        raise UsageError(f"{path} was made before pyproject.toml's {keys} changed: run the build step again")
    target = Target(config, pin, bool(raw["with_vectors"]))
    return BuildPlan(target, cast(Builder, raw["builder"]), Path(raw["dist"]), data, inputs)


def build_inputs(target: Target, builder: Builder, data: Sequence[DataFile], options: Sequence[str]) -> dict[str, str]:
    """Every input of the build, each with its own digest: the interpreter, the tools' and the suite's
    versions, the freezer options, the configuration, the app's spec, entry, profiles module and
    sources, the suite's and the vendored runtime's files, and every data file."""
    config = target.config
    inputs = {"builder": builder, "python": sys.version, "options": " ".join(options)}
    # The versions of everything the app's lock names (the freezer may collect any of it), and the lock.
    lock = config.project_root / "uv.lock"
    inputs |= {f"version {name}": _version(name) for name in sorted({*TOOLS, SUITE, *_locked_names(lock)})}
    inputs |= config_inputs(config)
    files = {"entry": config.app_entry, "uv.lock": lock}
    if builder == "pyinstaller" and config.pyinstaller_spec is not None:
        files["spec"] = config.pyinstaller_spec
    if (profiles := _module_file(config.source_root, config.profiles_module)) is not None:
        files["profiles-module"] = profiles
    files |= {f"source {name}": path for name, path in app_sources(target).items()}
    for package in (build_hooks, embedding_runtime):  # the suite's own code, and the runtime it vendors
        root = Path(package.__file__ or "").parent
        files |= {f"{package.__name__} {p.relative_to(root).as_posix()}": p for p in sorted(root.rglob("*.py"))}
    inputs |= {name: sha256_file(path) if path.is_file() else "absent" for name, path in files.items()}
    inputs |= {f"data {f.dest}": f.sha256 for f in data}
    return inputs


def config_inputs(config: PipelineConfig) -> dict[str, str]:
    """One digest per value of the project's ``pyproject.toml``, named by its dotted key
    (``config tool.embedding-pipeline.revision``): a rebuild names the key that changed."""
    document = tomllib.loads((config.project_root / "pyproject.toml").read_text(encoding="utf-8"))

    def leaves(table: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
        for key, value in table.items():
            if isinstance(value, dict) and value:
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{_CONFIG}{prefix}{key}", hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()

    return dict(leaves(document, ""))


def app_sources(target: Target) -> dict[str, Path]:
    """The app's own modules a freezer collects, by their path on the app's import path: the entry and
    every module it imports, at any depth, found where the frozen app finds them (the entry's own
    folder, then ``source-root``). Never a file nothing imports (a model's ``custom_modeling.py``, a
    test), nor a module found elsewhere (the standard library, a third-party package)."""
    config = target.config
    roots = list(dict.fromkeys(p.resolve() for p in (config.app_entry.parent, config.source_root)))
    outside = [p.resolve() for p in (config.output_root, config.tiktoken_cache, target.dist_root, target.build_dir)]
    found: dict[str, Path] = {}

    def locate(module: str) -> tuple[str, Path] | None:
        parts = module.split(".")
        for root in roots:
            for candidate in (root.joinpath(*parts[:-1], f"{parts[-1]}.py"), root.joinpath(*parts, "__init__.py")):
                if candidate.is_file() and not any(candidate.is_relative_to(o) for o in outside):
                    return candidate.relative_to(root).as_posix(), candidate
        return None

    def visit(module: str) -> None:
        # A dotted module runs its packages' __init__ first: each is an input too.
        for depth in range(1, module.count(".") + 2):
            name = ".".join(module.split(".")[:depth])
            if (hit := locate(name)) is not None and hit[0] not in found:
                found[hit[0]] = hit[1]
                queue.append((hit[1], name))

    entry = config.app_entry.resolve()
    found[entry.relative_to(roots[0]).as_posix()] = entry
    queue: list[tuple[Path, str]] = [(entry, "")]
    while queue:
        path, module = queue.pop()
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for imported in _imports(path, package):
            visit(imported)
    return dict(sorted(found.items()))


def _imports(path: Path, package: str) -> Iterator[str]:
    """The modules ``path`` imports (``from a import b``: ``a``, and ``a.b`` should ``b`` be a module),
    relative imports resolved against ``package``; none when it does not parse (the freezer says why)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join([*base, *([node.module] if node.module else [])])
            else:
                stem = node.module or ""
            if stem:
                yield stem
            yield from (f"{stem}.{alias.name}" if stem else alias.name for alias in node.names if alias.name != "*")


def _profile_data(target: Target) -> Iterator[DataFile]:
    marker = read_marker(target.profile_dir) if target.with_vectors else None
    if marker is None:
        return
    base = data_path(MODELS_FOLDER, target.pin.profile_id)
    for name, entry in marker.files.items():
        yield DataFile(entry.size, entry.sha256, f"{base}/{name}", target.profile_dir / name)
    yield _disk_file(f"{base}/{MARKER_NAME}", target.profile_dir / MARKER_NAME)


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


def _module_file(source_root: Path, module: str | None) -> Path | None:
    if not module:
        return None
    base = source_root.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def _locked_names(lock: Path) -> list[str]:
    """The distributions ``uv.lock`` names (none without one; an unreadable lock still changes its digest)."""
    try:
        packages = tomllib.loads(lock.read_text(encoding="utf-8")).get("package", [])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    return [str(p["name"]) for p in packages if isinstance(p, dict) and "name" in p]


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"
