"""The fixed texts every artifact embeds in its self-check, defined once.

The verify step compares the artifact's vectors for these texts with the
source runtime's, so they must be the same on both sides.
"""

SELF_CHECK_TEXTS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Offline search over local notes in a desktop app.",
    "a",
    "Embedding vectors let the app find notes by meaning, not only by words: "
    "this longer text spans many tokens so that batching and padding are exercised too.",
    "你好，世界 — ünïcödé text and emoji 🙂 must survive tokenization.",
)
