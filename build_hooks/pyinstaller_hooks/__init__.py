"""PyInstaller hooks for the embedding runtime and tiktoken, reusable by other apps.

Registered through the ``pyinstaller40`` entry point, so installing this
project is enough; the spec also passes the folder explicitly.
"""

from pathlib import Path


def get_hook_dirs() -> list[str]:
    return [str(Path(__file__).resolve().parent)]
