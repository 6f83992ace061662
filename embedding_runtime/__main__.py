"""``python -m embedding_runtime doctor|embed`` (see :mod:`embedding_runtime.cli`)."""

import sys

from embedding_runtime.cli import main

sys.exit(main())
