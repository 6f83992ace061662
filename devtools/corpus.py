"""A corpus with a desktop notes app's length mix, for benchmarks and tests."""

from __future__ import annotations

import numpy as np

from devtools.fixture_model import vocabulary


def mixed_length_texts(count: int, seed: int = 11) -> list[str]:
    """Short notes, paragraphs and a few pasted pages past the token limit (70/25/5 %)."""
    words = [w for w in vocabulary() if w.isalpha() and len(w) > 1]
    rng = np.random.default_rng(seed)
    kinds = rng.choice(3, size=count, p=[0.70, 0.25, 0.05])
    sizes = {0: (3, 25), 1: (40, 200), 2: (1500, 3000)}
    return [" ".join(rng.choice(words, size=int(rng.integers(*sizes[int(k)])))) for k in kinds]
