"""``python -m build_hooks.cli <command>``: the same as the ``embedding-pipeline`` console script."""

import sys

from build_hooks.cli import main

sys.exit(main(prog="python -m build_hooks.cli"))
