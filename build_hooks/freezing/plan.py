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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, cast

from build_hooks import fsutil
from build_hooks.config import Pin, load_config
from build_hooks.errors import UsageError
from build_hooks.freezing.content import DataFile, plan_contents
from build_hooks.freezing.inputs import CONFIG_PREFIX, build_inputs, config_inputs
from build_hooks.freezing.target import BUILDERS, Builder, Target, record_paths
from embedding_runtime.build_api import read_json_record

PLAN_SCHEMA = 1


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

    @property
    def records(self) -> tuple[Path, Path, Path]:
        """The records the build writes beside its dist: manifest, SBOM and stamp."""
        return record_paths(self.dist)

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
    contents = plan_contents(target, builder, generated_dir or target.generated_dir(builder))
    inputs = build_inputs(target, builder, contents.data, options)
    return BuildPlan(target, builder, dist or target.dist_dir(builder), contents.data, inputs, contents.generated)


def write_plan(plan: BuildPlan, path: Path | None = None) -> Path:
    """Write the generated data files (those that changed, where the plan says they are) and the plan
    file (default: :meth:`Target.plan_path`); the plan file's path."""
    path = path or plan.target.plan_path(plan.builder)
    document = json.dumps(plan.to_json(), indent=1, sort_keys=True).encode() + b"\n"
    sources = {f.dest: f.source for f in plan.data}
    wanted = {sources[dest]: content for dest, content in plan.generated.items()}
    # A probe record left by a build with vectors, when this one has none, goes; unchanged files stay.
    stale = [p for folder in {s.parent for s in wanted} for p in folder.glob("*") if p.is_file() and p not in wanted]
    changed = {s: content for s, content in wanted.items() if not s.is_file() or s.read_bytes() != content}
    fsutil.remove_all(stale)
    fsutil.atomic_write_files({**changed, path: document})  # the plan last: it names the files before it
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
    recorded = {k: v for k, v in inputs.items() if k.startswith(CONFIG_PREFIX)}
    if changed := sorted(k for k, v in config_inputs(config).items() ^ recorded.items()):
        keys = ", ".join(dict.fromkeys(k.removeprefix(CONFIG_PREFIX) for k in changed))
        raise UsageError(f"{path} was made before pyproject.toml's {keys} changed: run the build step again")
    target = Target(config, pin, bool(raw["with_vectors"]))
    return BuildPlan(target, cast(Builder, raw["builder"]), Path(raw["dist"]), data, inputs)
