# /// script
# dependencies = ["nox==2026.10.20", "uv==0.13.8", "desktop-embedding-pipeline==0.2.0"]
# ///
from pathlib import Path

from build_hooks.nox_sessions import register

register(Path(__file__).parent)
