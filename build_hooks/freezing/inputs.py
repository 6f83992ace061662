"""Every input of one build, each with its own digest: what the up-to-date stamp compares.

The inputs are what the artifact is made of: the interpreter, the versions of the
freezers, the suite and every distribution the app's ``uv.lock`` names (and the
lock itself), the freezer options, one digest per value of ``pyproject.toml``,
the app's spec, entry and profiles module, every module of the app the entry
imports (:func:`app_sources`), the suite's and the vendored runtime's own files,
and every data file. Nothing that is not the app's.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import build_hooks
import embedding_runtime
from build_hooks.config import PipelineConfig
from build_hooks.errors import UsageError
from build_hooks.freezing.content import DataFile
from build_hooks.freezing.target import Builder, Target
from build_hooks.versions import installed_versions, locked_versions
from embedding_runtime.build_api import sha256_file

SUITE = "desktop-embedding-pipeline"
# Tools whose version changes what a build makes.
TOOLS = ("nuitka", "pyinstaller", "pyinstaller-hooks-contrib", "onnxruntime", "tokenizers", "tiktoken", "numpy")
CONFIG_PREFIX = "config "  # the inputs named after a key of pyproject.toml


def build_inputs(target: Target, builder: Builder, data: Sequence[DataFile], options: Sequence[str]) -> dict[str, str]:
    """Every input of the build, each with its own digest: the interpreter, the tools' and the suite's
    versions, the freezer options, the configuration, the app's spec, entry, profiles module and
    sources, the suite's and the vendored runtime's files, and every data file."""
    config = target.config
    inputs = {"builder": builder, "python": sys.version, "options": " ".join(options)}
    inputs |= config_inputs(config)
    lock = config.project_root / "uv.lock"
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
    # The installed version of everything the app's lock names (the freezer may collect any of it). An
    # unreadable lock still changes its digest above; its names are then unknown here.
    try:
        locked = list(locked_versions(lock))
    except UsageError:
        locked = []
    inputs |= {f"version {name}": v for name, v in installed_versions(sorted({*TOOLS, SUITE, *locked})).items()}
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
                digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
                yield f"{CONFIG_PREFIX}{prefix}{key}", digest

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


def _module_file(source_root: Path, module: str | None) -> Path | None:
    if not module:
        return None
    base = source_root.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
