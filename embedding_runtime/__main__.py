"""``python -m embedding_runtime doctor|embed`` (see :mod:`embedding_runtime._cli`)."""

import sys

from embedding_runtime._cli import main

sys.exit(main())
