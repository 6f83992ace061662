"""Pack each verified artifact with its records, as users download it (see --help)."""

import sys
from pathlib import Path

# Runs as a plain script too (`python scripts/...`), so the project root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from build_hooks.pipeline_steps import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__, sys.argv[1:]))
