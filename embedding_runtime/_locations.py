"""Where profile folders can live: the user's override, then the bundled copies.

Platform facts are parameters (defaulting to this process) so that every OS
branch can be tested on any OS.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Literal

from embedding_runtime._artifact import DATA_FOLDER, MODELS_FOLDER

# Points straight at a folder of profile folders, replacing <app data>/<app>/embedding_models.
OVERRIDE_ENV = "EMBEDDING_RUNTIME_MODELS_DIR"

RootKind = Literal["override", "bundled", "source"]


@dataclass(frozen=True)
class ModelRoot:
    """A folder that may hold ``<profile id>/``, and what kind of place it is."""

    path: Path
    """The folder holding ``<profile id>/`` (e.g. ``data/embedding_models``)."""
    kind: RootKind
    """``"override"`` (the user's folder), ``"bundled"`` (inside the artifact) or ``"source"``
    (the project's ``data/`` on a run from source)."""


@dataclass(frozen=True)
class ProcessFacts:
    """What decides the roots: OS, environment, and how the app is packaged."""

    platform: str
    env: Mapping[str, str]
    home: Path
    executable: Path
    frozen: bool  # PyInstaller sets sys.frozen; Nuitka defines __compiled__ in compiled modules
    meipass: Path | None

    @classmethod
    def current(cls) -> ProcessFacts:
        meipass = getattr(sys, "_MEIPASS", None)
        return cls(
            platform=sys.platform,
            env=os.environ,
            home=_home(),
            executable=Path(sys.executable).resolve(),
            frozen=bool(getattr(sys, "frozen", False)) or "__compiled__" in globals(),
            meipass=Path(meipass) if meipass else None,
        )


def _home() -> Path:
    # `env -i`, a service account or a user missing from passwd: no home is a place with no override.
    try:
        return Path.home()
    except (RuntimeError, KeyError, OSError):
        return Path(os.sep) / "nonexistent"


def app_data_dir(app_name: str, facts: ProcessFacts | None = None) -> Path:
    """The per-user data folder of ``app_name``: where the app keeps what it writes (and where a
    user's model override lives, under ``embedding_models/``).

    ``%LOCALAPPDATA%\\<app>`` on Windows, ``~/Library/Application Support/<app>`` on macOS,
    ``$XDG_DATA_HOME/<app>`` (else ``~/.local/share/<app>``) elsewhere. Not created here.
    """
    facts = facts or ProcessFacts.current()
    env = facts.env
    if facts.platform == "win32":
        return _absolute(env.get("LOCALAPPDATA", ""), facts.home / "AppData" / "Local", PureWindowsPath) / app_name
    if facts.platform == "darwin":
        return facts.home / "Library" / "Application Support" / app_name
    return _absolute(env.get("XDG_DATA_HOME", ""), facts.home / ".local" / "share", PurePosixPath) / app_name


def _absolute(value: str, default: Path, flavour: type[PurePath]) -> Path:
    """``value`` when it is an absolute path, else ``default``: a relative one would move with the
    working folder (the XDG base directory specification says to ignore it)."""
    value = value.strip()
    return Path(value) if value and flavour(value).is_absolute() else default


def override_root(app_name: str, facts: ProcessFacts) -> Path:
    """The folder a user puts ``<profile id>/`` in to override the bundled model."""
    if explicit := _unquoted(facts.env.get(OVERRIDE_ENV, "")):
        return Path(explicit)
    return app_data_dir(app_name, facts) / MODELS_FOLDER


def _unquoted(value: str) -> str:
    """A path as typed, without the double quotes Explorer's "Copy as path" puts around it."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].strip()
    return value


def bundled_data_roots(facts: ProcessFacts | None = None) -> list[Path]:
    """The folders holding a frozen app's ``data/``, in order (none for source runs)."""
    facts = facts or ProcessFacts.current()
    roots = []
    if facts.meipass is not None:
        # PyInstaller >= 6 onedir: data sits under _internal/, which is what _MEIPASS names.
        roots.append(facts.meipass)
    if facts.frozen:
        # Nuitka standalone (and older PyInstaller layouts): data beside the executable.
        roots.append(facts.executable.parent)
    return roots


def model_roots(app_name: str, facts: ProcessFacts | None = None, source_root: Path | None = None) -> list[ModelRoot]:
    """Every root in the order they are tried: override, bundled roots, then the app's project.

    ``source_root`` is the app's project folder (holding ``data/``), which only the app knows;
    never this package's own location, which is site-packages once the runtime is installed.
    """
    facts = facts or ProcessFacts.current()
    roots = [ModelRoot(override_root(app_name, facts), "override")]
    roots += [ModelRoot(root / DATA_FOLDER / MODELS_FOLDER, "bundled") for root in bundled_data_roots(facts)]
    if source_root is not None:
        roots.append(ModelRoot(source_root / DATA_FOLDER / MODELS_FOLDER, "source"))
    unique: dict[Path, ModelRoot] = {}
    for root in roots:
        unique.setdefault(root.path, root)
    return list(unique.values())
