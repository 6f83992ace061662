from pathlib import Path

from build_hooks.nox_sessions import register

register(Path(__file__).parent)
