"""int8-vs-fp32 agreement on the canary's probe texts, computed exactly as the build's probe record
(build_hooks/bundle.py: probe_record): one thread, documents, full width, min cosine."""

import json
import sys
import time
from pathlib import Path

from embedding_runtime import EmbeddingService, ModelRoot
from embedding_runtime.build_api import PROBE_TEXTS, THREADS_ENV, VARIANT_ENV

models = Path(sys.argv[1])
t0 = time.perf_counter()
vec = {}
for variant in ("fp32", "int8"):
    service = EmbeddingService(
        "local-text-retrieval-v1", roots=[ModelRoot(models, "source")], env={VARIANT_ENV: variant, THREADS_ENV: "1"}
    )
    vec[variant] = service.embed_documents(list(PROBE_TEXTS))
    assert service.variant == variant, (service.variant, service.explain())
print(
    json.dumps(
        {
            "int8_vs_fp32_min_cosine": round(float((vec["int8"] * vec["fp32"]).sum(axis=1).min()), 6),
            "texts": len(PROBE_TEXTS),
            "seconds": round(time.perf_counter() - t0, 2),
        }
    )
)
