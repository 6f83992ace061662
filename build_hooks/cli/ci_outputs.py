"""``ci-outputs``: what the reusable workflow reads of the app, as ``$GITHUB_OUTPUT`` lines.

The workflow holds no logic of its own: this command reads the app's table (the pin, with the
workflow's ``revision`` input as the only override: nothing from the environment), the folders
its caches keep, and the versions its ``uv.lock`` holds; with ``--suite-version`` it first refuses
an app that names another suite than the workflow's (one line each, as ``check-project``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from build_hooks.cli._common import Parser, exits_on_error, log
from build_hooks.config import PipelineConfig, load_config, resolve_pin
from build_hooks.versions import DISTRIBUTION, locked_version, locked_versions, project_problems


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = Parser(
        prog=prog or "embedding-pipeline ci-outputs",
        description="Print what the reusable workflow reads of the app (pin, cache paths, locked versions) as "
        "name=value lines, appended to $GITHUB_OUTPUT when it is set.",
    )
    parser.add_argument("--revision", default="", help="the workflow's revision input (empty: the table's pin)")
    parser.add_argument("--suite-version", help="the workflow's own version: the app must name it everywhere")
    parser.add_argument("--output", type=Path, help="the file to append to (default: $GITHUB_OUTPUT, else stdout)")
    args = parser.parse_args(argv)
    config = load_config()
    if args.suite_version:
        problems = workflow_problems(config.project_root, args.suite_version)
        annotate = "::error::" if os.environ.get("GITHUB_ACTIONS") == "true" else "ERROR: "
        for line in problems:
            log(f"{annotate}{line}")
        if problems:
            return 1
    lines = "".join(f"{name}={value}\n" for name, value in ci_outputs(config, args.revision).items())
    output = args.output or (Path(os.environ["GITHUB_OUTPUT"]) if os.environ.get("GITHUB_OUTPUT") else None)
    if output is None:
        sys.stdout.write(lines)
    else:
        with output.open("a", encoding="utf-8") as fh:
            fh.write(lines)
        log(f"{len(lines.splitlines())} outputs appended to {output}")
    return 0


def workflow_problems(root: Path, workflow_version: str) -> list[str]:
    """The app against the workflow of ``workflow_version``: the suite its ``uv.lock`` holds must be that
    one (the workflow is called at the tag of the version the app locked); then the app's own places
    must agree with each other (:func:`build_hooks.versions.project_problems`)."""
    locked = locked_version(root / "uv.lock", DISTRIBUTION)
    if locked is not None and locked != workflow_version:
        return [
            f"this is embedding-pipeline.yml of {workflow_version} but uv.lock holds {DISTRIBUTION} {locked}: call "
            f"the workflow at @v{locked}, or move the app to {workflow_version} (CHANGELOG.md, Upgrading)"
        ]
    return project_problems(root, running=workflow_version)


def ci_outputs(config: PipelineConfig, revision: str = "") -> dict[str, str]:
    """The pin (``revision`` overriding the table's when given), the folders the caches keep (relative to
    the project), the encodings, the app's name and the suite's and Nuitka's locked versions."""
    pin = resolve_pin(config, revision=revision.strip() or None, env={})
    root = config.project_root
    locked = locked_versions(root / "uv.lock")
    output_root = config.output_root.relative_to(root).as_posix()
    return {
        "repo": pin.repo,
        "revision": pin.revision,
        "variants": "both" if len(pin.variants) > 1 else pin.variants[0],
        "profile-id": pin.profile_id,
        "output-root": output_root,
        "profile-path": f"{output_root}/{pin.profile_id}",
        "tiktoken-cache": config.tiktoken_cache.relative_to(root).as_posix(),
        "encodings": "-".join(config.tiktoken_encodings),
        "app-name": config.app_name,
        "suite-version": locked.get(DISTRIBUTION, "none"),
        "nuitka-version": locked.get("nuitka", "none"),
    }
