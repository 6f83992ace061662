"""pocket-search QUERY TEXT...   prints the texts, closest in meaning first.
pocket-search --self-check      the document verify-artifact reads."""

import sys
from pathlib import Path

import tiktoken

from embedding_runtime import EmbeddingService, self_check_main
from pocket_search.profiles import POCKET_MINI_V1

APP_NAME = "pocket-search"
PROJECT = Path(__file__).resolve().parents[2]  # a run from source finds data/ here


def main(argv: list[str]) -> int:
    if argv[:1] == ["--self-check"]:
        info = {"app_name": APP_NAME, "profile_id": POCKET_MINI_V1.profile_id, "tiktoken_encodings": ["cl100k_base"]}
        return self_check_main(info, tiktoken=tiktoken, source_root=PROJECT)
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    service = EmbeddingService(POCKET_MINI_V1, app_name=APP_NAME, source_root=PROJECT)
    query, texts = service.embed_queries(argv[:1])[0], argv[1:]
    for score, text in sorted(zip(service.embed_documents(texts) @ query, texts, strict=True), reverse=True):
        print(f"{score:.3f}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
