"""Skip a rebuild when no input of the plan changed, and say which input did when one has.

The stamp beside an artifact (``<dist>.inputs.json``) records the plan's inputs
as the build that made the artifact saw them, one digest per input
(:func:`build_hooks.freezing.plan.build_inputs`): the app's spec, entry, profiles module
and sources, the suite's and the vendored runtime's files, the tool versions,
the options, the configuration and every data file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from build_hooks.freezing.manifest import RECORD_MAX_BYTES
from build_hooks.freezing.target import manifest_path, record_paths, sbom_path, stamp_path
from embedding_runtime.build_api import read_json_record

STAMP_SCHEMA = 1
_SHOWN = 5


def rebuild_reason(dist: Path, inputs: Mapping[str, str]) -> str | None:
    """Why ``dist`` must be built from a plan with ``inputs``; ``None`` when it is up to date."""
    if not dist.is_dir():
        return "there is no artifact yet"
    if not manifest_path(dist).is_file() or not sbom_path(dist).is_file():
        return "its manifest or SBOM is missing"
    recorded = read_stamp(dist)
    if recorded is None:
        return "no record of the inputs it was built from"
    if changed := changed_inputs(recorded, inputs):
        more = f" and {len(changed) - _SHOWN} more" if len(changed) > _SHOWN else ""
        return f"{', '.join(changed[:_SHOWN])}{more} changed"
    return None


def void_records(dist: Path) -> None:
    """Remove the last build's records beside ``dist``, the stamp first: a build that starts calls
    this, so that one failing half-way leaves nothing that calls its half-built dist up to date."""
    for record in reversed(record_paths(dist)):
        record.unlink(missing_ok=True)


def build_message(dist: Path, why: str) -> str:
    """The line a build logs before it starts: ``rebuilding <dist>: <input> changed``."""
    return f"{'rebuilding' if dist.is_dir() else 'building'} {dist}: {why}"


def changed_inputs(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """The inputs whose digest differs, appeared or disappeared, by name."""
    return sorted(name for name in recorded.keys() | current.keys() if recorded.get(name) != current.get(name))


def stamp_document(inputs: Mapping[str, str]) -> bytes:
    """The stamp of a build made from ``inputs``: written last, once every record before it is."""
    document = {"schema": STAMP_SCHEMA, "inputs": dict(sorted(inputs.items()))}
    return json.dumps(document, indent=1).encode() + b"\n"


def read_stamp(dist: Path) -> dict[str, str] | None:
    raw = read_json_record(stamp_path(dist), RECORD_MAX_BYTES)
    try:
        if not isinstance(raw, dict) or raw.get("schema") != STAMP_SCHEMA:
            return None
        return {str(k): str(v) for k, v in raw["inputs"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
