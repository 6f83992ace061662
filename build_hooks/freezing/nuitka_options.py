"""Nuitka's command line for an artifact, made from its plan.

Nuitka's --include-data-dir silently drops files by suffix (.bin, .so, .py and
more), so every data file of the plan is passed one by one with
--include-data-files; the packages every artifact collects and leaves out come
from :mod:`build_hooks.freezing.selection`; the suite's own plugin rides along.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from build_hooks.config import find_pyproject, load_config, project_holding
from build_hooks.errors import UsageError
from build_hooks.freezing.plan import BuildPlan, make_plan, write_plan
from build_hooks.freezing.selection import (
    BYTECODE_PACKAGES,
    EXCLUDED_MODULES,
    PLUGIN_MODULES,
    PLUGIN_PACKAGES,
    WHOLE_PACKAGES,
)
from build_hooks.freezing.target import nuitka_report_path, target_for
from embedding_runtime.build_api import STDLIB_ACCELERATORS

# The suite's Nuitka plugin (a file Nuitka imports itself: importing it here would import Nuitka).
NUITKA_PLUGIN = Path(__file__).with_name("nuitka_plugin.py")

# The onnxruntime wheel ships its C API library beside the Python binding, which carries its
# own copy of the runtime: 35 MB the app never loads (the self-check proves it). On Windows
# the binding links against onnxruntime.dll, so nothing is left out there.
UNUSED_LIBRARIES = {
    "linux": ("onnxruntime/capi/libonnxruntime.so*",),
    "darwin": ("onnxruntime/capi/libonnxruntime*.dylib",),
}


def nuitka_options(plan: BuildPlan, platform: str = sys.platform) -> list[str]:
    """Every Nuitka option the artifact needs (without the entry script), for any Nuitka command line."""
    options = [
        "--standalone", "--assume-yes-for-downloads", "--remove-output",
        f"--output-dir={plan.dist.parent}",
        f"--output-folder-name={plan.dist.name}",
        f"--output-filename={plan.target.config.app_name}",
        # Plugins found by iterating a namespace package: nothing imports them by name.
        *(f"--include-package={package}" for package in (*WHOLE_PACKAGES, *PLUGIN_PACKAGES)),
        *(f"--include-module={module}" for module in PLUGIN_MODULES),
        *(f"--include-module={module}" for module in extension_accelerators()),
        *(f"--nofollow-import-to={module}" for module in (*EXCLUDED_MODULES, *plan.target.config.exclude_modules)),
        *(f"--noinclude-custom-mode={package}:bytecode" for package in bytecode_packages(plan)),
        # A left-out module is absent, as in any Python without it (the self-check probes for HTTP
        # clients); Nuitka's default would raise its own error on the probe instead.
        "--no-deployment-flag=excluded-module-usage",
        # What was compiled and included, by module and distribution: the SBOM is made from it.
        f"--report={nuitka_report_path(plan.dist)}",
        # The same inputs give the same bytes (Nuitka's default everywhere but Windows, where it stamps
        # the build time): verify-artifact builds the program again and compares.
        "--reproducible=yes",
        # A Ctrl-C during the program's own start-up ends it with one line instead of a crash.
        f"--user-plugin={NUITKA_PLUGIN}",
        *(f"--noinclude-dlls={pattern}" for pattern in UNUSED_LIBRARIES.get(_os_family(platform), ())),
    ]  # fmt: skip
    options += [f"--include-data-files={f.source}={f.dest}" for f in plan.data]
    return options


def bytecode_packages(plan: BuildPlan) -> tuple[str, ...]:
    """What Nuitka ships as bytecode: the native-backed packages, and the app's ``nuitka-bytecode``."""
    return tuple(dict.fromkeys((*BYTECODE_PACKAGES, *plan.target.config.nuitka_bytecode)))


def options_for_project(project_root: Path | None = None, dist_root: Path | None = None) -> list[str]:
    """The Nuitka options of the app configured in ``project_root`` (default: the working
    directory's project), to splice into an app's own Nuitka command line. Makes the plan
    (and writes its generated data files, which the options name)."""
    pyproject = find_pyproject() if project_root is None else project_holding(project_root.resolve())
    if pyproject is None:  # never another project's table (this one's, or the working directory's)
        raise UsageError(f"no pyproject.toml with a [tool.embedding-pipeline] table in or above {project_root}")
    target = target_for(load_config(pyproject))
    plan = make_plan(target, "nuitka", dist=target.dist_dir("nuitka", dist_root))
    write_plan(plan)
    return nuitka_options(plan)


def extension_accelerators() -> list[str]:
    """The stdlib accelerators this interpreter has as extension modules (built-in ones always ship)."""
    found = []
    for name in STDLIB_ACCELERATORS:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin not in (None, "built-in"):
            found.append(name)
    return found


def nuitka_command(plan: BuildPlan, extra_args: Sequence[str] = (), python: str = sys.executable) -> list[str]:
    """The full Nuitka command line for ``plan``."""
    return [python, "-m", "nuitka", *nuitka_options(plan), *extra_args, str(plan.target.config.app_entry)]


def _os_family(platform: str) -> str:
    return "linux" if platform.startswith("linux") else platform
