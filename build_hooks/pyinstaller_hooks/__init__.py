"""PyInstaller hooks for the embedding runtime and tiktoken, reusable by other apps.

Pass the folder to an analysis: ``Analysis(..., hookspath=get_hook_dirs())``.
"""

from pathlib import Path


def get_hook_dirs() -> list[str]:
    return [str(Path(__file__).resolve().parent)]
