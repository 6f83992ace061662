"""The Nuitka build, for an app's own scripts and noxfiles.

``build`` is what ``embedding-pipeline build-nuitka`` runs: plan, compile unless
no input changed, check the dist, write its records. ``options_for_project``
gives Nuitka's options for a project, for a hand-run ``python -m nuitka``. Both
live in :mod:`build_hooks.freezing.nuitka`; this module is their public name.
"""

from build_hooks.freezing.nuitka import build, options_for_project

__all__ = ["build", "options_for_project"]
