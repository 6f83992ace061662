"""What any app's PyInstaller spec needs from the suite, in a few lines.

    from build_hooks.errors import PipelineError
    from build_hooks.pyinstaller_spec import SpecInputs

    try:
        spec = SpecInputs.for_spec(SPECPATH)  # the plan: refuses before analysis (profile, cache, pin)
    except PipelineError as refusal:
        raise SystemExit(refusal.report()) from None  # one ERROR line per problem
    a = Analysis([spec.entry], pathex=spec.pathex, datas=spec.datas, excludes=spec.excludes, noarchive=True)
    ...  # PYZ, EXE(name=spec.name, exclude_binaries=True), COLLECT(name=spec.name) as usual
    spec.finish(a)  # checks the copies; the manifest, SBOM and stamp beside the dist

The hooks (the runtime's lazy imports, tiktoken's plugins, the standard
library's accelerators) come through the ``pyinstaller40`` entry point of this
distribution: no ``hookspath`` and no ``hiddenimports`` needed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from build_hooks.config import find_pyproject, load_config, project_holding
from build_hooks.errors import PipelineError, PreflightError
from build_hooks.freezing.collection import Analysis, pyinstaller_collection
from build_hooks.freezing.plan import BuildPlan, make_plan, read_plan, write_plan
from build_hooks.freezing.pyinstaller import PLAN_FLAG
from build_hooks.freezing.records import write_records
from build_hooks.freezing.selection import EXCLUDED_MODULES
from build_hooks.freezing.stamp import void_records
from build_hooks.freezing.target import target_for
from build_hooks.versions import REMOVED_SPEC_ATTRIBUTES

__all__ = ["SpecInputs"]


@dataclass(frozen=True)
class SpecInputs:
    """The analysis inputs of one build, from its plan: what the spec hands to ``Analysis``,
    ``EXE`` and ``COLLECT``, and :meth:`finish` after them."""

    plan: BuildPlan
    """The build's plan (every data file with its hash, every input with its digest)."""

    @classmethod
    def for_spec(cls, spec_path: str | os.PathLike[str], argv: Sequence[str] | None = None) -> SpecInputs:
        """The plan the build step handed over (``pyinstaller <spec> -- --plan FILE``); on a hand run,
        a plan made now for the project being built (the working directory's, else the one holding
        the spec), with the pin in effect. :class:`PreflightError` when it must not be built."""
        from PyInstaller.config import CONF

        parser = argparse.ArgumentParser(prog=f"pyinstaller {Path(spec_path).name} --")
        parser.add_argument(PLAN_FLAG, type=Path, help="the build step's plan file")
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        if args.plan is not None:
            plan = read_plan(args.plan)
        else:
            config = load_config(project_holding(Path.cwd().resolve()) or find_pyproject(Path(spec_path).resolve()))
            target = target_for(config)
            # Without --distpath, build where the build step does (dist/pyinstaller/<app>).
            chosen = Path(CONF["distpath"]).absolute()
            dist = None if chosen == Path("dist").absolute() else chosen / config.app_name
            planned = dist if dist is not None else target.dist_dir("pyinstaller", None)
            if planned.exists() and not CONF.get("noconfirm") and not sys.stdout.isatty():
                # PyInstaller would refuse to replace it only after the whole analysis.
                spec = config.pyinstaller_spec.name if config.pyinstaller_spec else "<spec>"
                raise PreflightError(
                    [f"{planned} holds an earlier build: run `pyinstaller --noconfirm {spec}`"
                     " (or `embedding-pipeline build-pyinstaller`) to replace it"]
                )  # fmt: skip
            plan = make_plan(target, "pyinstaller", dist=dist)
            write_plan(plan)
        CONF["distpath"] = str(plan.dist.parent)
        void_records(plan.dist)  # a build that fails from here on is never "up to date"
        return cls(plan)

    def __getattr__(self, name: str) -> NoReturn:
        # An attribute an earlier version had: one line naming the edit, not an AttributeError in PyInstaller.
        if name in REMOVED_SPEC_ATTRIBUTES:
            version, fix = REMOVED_SPEC_ATTRIBUTES[name]
            raise SystemExit(
                f"ERROR: the spec uses SpecInputs.{name}, removed in {version}: {fix}"
                f" (CHANGELOG.md, Upgrading to {version})"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def name(self) -> str:
        """The table's ``app-name``: the executable's and the dist folder's name."""
        return self.plan.target.config.app_name

    @property
    def entry(self) -> str:
        """The table's ``app-entry``: the script ``Analysis`` starts from."""
        return str(self.plan.target.config.app_entry)

    @property
    def pathex(self) -> list[str]:
        """The table's ``source-root``: where the app's packages import from."""
        return [str(self.plan.target.config.source_root)]

    @property
    def datas(self) -> list[tuple[str, str]]:
        """The plan's data files (model profile, tiktoken cache, provenance), file by file."""
        return self.plan.pyinstaller_datas()

    @property
    def excludes(self) -> list[str]:
        """HTTP clients and build-time packages (an offline artifact carries none), and the table's
        ``exclude-modules`` (what this app never imports)."""
        # PyInstaller adds "__main__" to the list it is given, in place, so that the analysis it saved
        # never matches the next one's and its incremental analysis (which verify re-runs) never applies.
        return [*EXCLUDED_MODULES, *self.plan.target.config.exclude_modules, "__main__"]

    def finish(self, analysis: Analysis) -> Path:
        """After COLLECT: write the manifest of every file, check the data copies against the plan
        by its hashes (one hash of the model per build), write the SBOM of what ``analysis``
        collected and the stamp of the plan's inputs. A bad copy (or a check that cannot pass) ends
        PyInstaller with one ``ERROR:`` line (``SystemExit``, as the spec's refusal does) and leaves
        no dist and no records behind: nothing that failed its checks stays where an artifact goes."""
        try:
            write_records(self.plan, pyinstaller_collection(analysis))
        except PipelineError as failed:
            raise SystemExit(failed.report()) from None
        return self.plan.dist
