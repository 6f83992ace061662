"""The runtime's source is ../embedding_runtime, one copy for the wheel and for the repository.

A wheel copies it in. An editable install must not: it points at the source through
``dev-mode-dirs``, and a copy in site-packages would come first on ``sys.path``, so every
later edit would be shadowed by the copy made at install time (uv caches that build, so
the copy was never refreshed). Hence the copy is requested here, for standard wheels only,
instead of by ``force-include``, which hatchling also applies to editable wheels.
"""

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class RuntimeSource(BuildHookInterface):  # type: ignore[misc]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        # From the repository the source is beside this folder; from the sdist it is inside it, where
        # the wheel's own file selection (the project's name) finds it.
        if version == "standard" and not (Path(self.root) / "embedding_runtime").is_dir():
            build_data["force_include"]["../embedding_runtime"] = "embedding_runtime"
