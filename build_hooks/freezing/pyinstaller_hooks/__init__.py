"""PyInstaller hooks for the embedding runtime and tiktoken, for any app's analysis.

PyInstaller finds this folder through the suite's ``pyinstaller40`` entry point
(``hook-dirs`` in pyproject.toml): installing the suite is enough, no ``hookspath``.
"""

from pathlib import Path


def get_hook_dirs() -> list[str]:
    return [str(Path(__file__).resolve().parent)]
