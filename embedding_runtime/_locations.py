"""Where profile folders can live: the user's override, then the bundled copies.

Platform facts are parameters (defaulting to this process) so that every OS
branch can be tested on any OS.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Literal

from embedding_runtime._artifact import DATA_FOLDER, MODELS_FOLDER
from embedding_runtime._errors import AppDataUnavailableError

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

    def __post_init__(self) -> None:
        if isinstance(self.path, (str, os.PathLike)) and not isinstance(self.path, Path):
            # a str or any os.PathLike is taken as the Path it names
            object.__setattr__(self, "path", Path(self.path))


@dataclass(frozen=True)
class ProcessFacts:
    """What decides the roots: OS, environment, and how the app is packaged."""

    platform: str
    env: Mapping[str, str]
    home: Path | None  # the user's home as the system's user database has it (POSIX), when HOME is unset
    executable: Path
    frozen: bool  # PyInstaller sets sys.frozen; Nuitka defines __compiled__ in compiled modules
    meipass: Path | None

    @classmethod
    def current(cls) -> ProcessFacts:
        meipass = getattr(sys, "_MEIPASS", None)
        return cls(
            platform=sys.platform,
            env=os.environ,
            home=_database_home(),
            executable=Path(sys.executable).resolve(),
            frozen=bool(getattr(sys, "frozen", False)) or "__compiled__" in globals(),
            meipass=Path(meipass) if meipass else None,
        )


def _database_home() -> Path | None:
    """The home the system's user database records for this user (where HOME is unset, as under
    `env -i`); ``None`` without one (Windows, a user missing from passwd)."""
    try:
        import pwd

        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError, OSError):
        return None


def app_data_location(app_name: str, facts: ProcessFacts | None = None) -> Path | str:
    """The per-user data folder of ``app_name``, or why there is none to trust (a ``str`` naming the
    variable to set): an empty or relative HOME would put the app's data under ``/`` or wherever the
    app was started, and a Windows without LOCALAPPDATA and USERPROFILE under ``C:\\nonexistent``."""
    facts = facts or ProcessFacts.current()
    env = facts.env
    if facts.platform == "win32":
        if local := _absolute(env.get("LOCALAPPDATA", ""), PureWindowsPath):
            return local / app_name
        if profile := _absolute(env.get("USERPROFILE", ""), PureWindowsPath):
            return profile / "AppData" / "Local" / app_name
        return (
            "neither LOCALAPPDATA nor USERPROFILE names an absolute folder: set LOCALAPPDATA to your "
            "AppData\\Local folder (normally C:\\Users\\<you>\\AppData\\Local)"
        )
    if facts.platform != "darwin" and (data := _absolute(env.get("XDG_DATA_HOME", ""), PurePosixPath)):
        return data / app_name
    home = _posix_home(env, facts.home)
    if isinstance(home, str):
        return home
    if facts.platform == "darwin":
        return home / "Library" / "Application Support" / app_name
    return home / ".local" / "share" / app_name


def _posix_home(env: Mapping[str, str], database: Path | None) -> Path | str:
    if "HOME" not in env:
        if database is not None and database.is_absolute():
            return database
        return "HOME is not set, and the system knows no home for this user: set HOME to your home folder"
    value = env["HOME"].strip()
    if not value:
        return "HOME is empty: set it to your home folder"
    if not PurePosixPath(value).is_absolute():
        return f"HOME is a relative path ({value[:40]!r}): set it to your home folder's absolute path"
    return Path(value)


def app_data_dir(app_name: str, facts: ProcessFacts | None = None) -> Path:
    """The per-user data folder of ``app_name``: where the app keeps what it writes (and where a
    user's model override lives, under ``embedding_models/``).

    ``%LOCALAPPDATA%\\<app>`` on Windows (else ``%USERPROFILE%\\AppData\\Local\\<app>``),
    ``~/Library/Application Support/<app>`` on macOS, ``$XDG_DATA_HOME/<app>`` (else
    ``~/.local/share/<app>``) elsewhere. Not created here.

    Raises:
        AppDataUnavailableError: the environment names no such folder (an empty or relative HOME;
            on Windows neither LOCALAPPDATA nor USERPROFILE): the message names the variable to set.
    """
    location = app_data_location(app_name, facts)
    if isinstance(location, str):
        raise AppDataUnavailableError(f"cannot tell where {app_name} keeps its data: {location}")
    return location


def _absolute(value: str, flavour: type[PurePath]) -> Path | None:
    """``value`` when it is an absolute path, else ``None``: a relative one would move with the
    working folder (the XDG base directory specification says to ignore it)."""
    value = value.strip()
    return Path(value) if value and flavour(value).is_absolute() else None


def override_root(app_name: str, facts: ProcessFacts) -> Path | str:
    """The folder a user puts ``<profile id>/`` in to override the bundled model, or why there is none."""
    if explicit := _unquoted(facts.env.get(OVERRIDE_ENV, "")):
        return Path(explicit)
    location = app_data_location(app_name, facts)
    return location if isinstance(location, str) else location / MODELS_FOLDER


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


def source_folder(source_root: Path, key: str, default: str) -> Path:
    """A folder of the app's project where its ``pyproject.toml``'s ``[tool.embedding-pipeline]`` table puts it
    (``output-root``, ``tiktoken-cache``), else ``default`` under ``source_root``: a source run finds what
    prepare-model and warm-tiktoken wrote, wherever the table sent it."""
    try:
        document = tomllib.loads((source_root / "pyproject.toml").read_text(encoding="utf-8"))
        value = document["tool"]["embedding-pipeline"].get(key)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError):
        value = None
    return source_root / (value if isinstance(value, str) and value.strip() else default)


def model_roots(app_name: str, facts: ProcessFacts | None = None, source_root: Path | None = None) -> list[ModelRoot]:
    """Every root in the order they are tried: override, bundled roots, then the app's project.

    ``source_root`` is the app's project folder (holding ``data/``, or the table's ``output-root``), which
    only the app knows;
    never this package's own location, which is site-packages once the runtime is installed.
    """
    facts = facts or ProcessFacts.current()
    override = override_root(app_name, facts)
    roots = [ModelRoot(override, "override")] if isinstance(override, Path) else []
    roots += [ModelRoot(root / DATA_FOLDER / MODELS_FOLDER, "bundled") for root in bundled_data_roots(facts)]
    if source_root is not None:
        roots.append(ModelRoot(source_folder(source_root, "output-root", f"{DATA_FOLDER}/{MODELS_FOLDER}"), "source"))
    unique: dict[Path, ModelRoot] = {}
    for root in roots:
        unique.setdefault(root.path, root)
    return list(unique.values())
