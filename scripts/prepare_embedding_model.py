"""Mirror a pinned hub model into data/embedding_models/<profile-id>/ (see --help)."""

import sys
from pathlib import Path

# Runs as a plain script too (`python scripts/...`), so the project root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from build_hooks.cli.prepare_model import main

if __name__ == "__main__":
    sys.exit(main())
