"""Thread policy and overhead of the runtime (a benchmark, not a test).

For each thread count: bulk throughput of one ``embed_documents`` call over the
mixed corpus, the latency of one short query alone, and the latency of the same
query while the bulk call runs in another thread (the app's re-index and its
search box sharing one service). Also the share of the bulk call's wall time
spent outside onnxruntime's ``session.run`` (tokenizing, padding, pooling, copies).

    python -m bench.bench_threads [--variant int8] [--texts 120]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from devtools.corpus import mixed_length_texts
from devtools.fixture_model import FixtureSpec, write_fixture_repo
from embedding_runtime import EmbeddingService, ModelRoot, ProfileContract

QUERY = ["what did I write about the river last week?"]


class TimedSession:
    """Wraps an onnxruntime session to add up the seconds spent inside ``run``."""

    def __init__(self, session: Any) -> None:
        self._session, self.seconds = session, 0.0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._session.run(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def query_latency(service: EmbeddingService, repeats: int = 7) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        service.embed_queries(QUERY)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure(root: Path, contract: ProfileContract, variant: str, threads: int, texts: list[str]) -> str:
    service = EmbeddingService(
        contract, roots=[ModelRoot(root, "bundled")], env={"EMBEDDING_RUNTIME_VARIANT": variant}, threads=threads
    )
    service.load()
    engine = service._engine  # the benchmark times the session the runtime really uses
    assert engine is not None
    timed = TimedSession(engine.session)
    engine.session = timed
    idle = query_latency(service)
    started = time.perf_counter()
    bulk = threading.Thread(target=service.embed_documents, args=(texts,))
    bulk.start()
    time.sleep(0.3)
    busy = query_latency(service, repeats=3)
    bulk.join()
    bulk_seconds = time.perf_counter() - started
    timed.seconds = 0.0
    started = time.perf_counter()
    service.embed_documents(texts)
    wall = time.perf_counter() - started
    outside = 1 - timed.seconds / wall
    return (
        f"| {threads} | {len(texts) / wall:.1f} texts/s | {idle * 1000:.0f} ms | {busy * 1000:.0f} ms "
        f"(bulk call {bulk_seconds:.1f} s) | {outside:.1%} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--texts", type=int, default=120)
    parser.add_argument("--variant", default="int8", choices=("fp32", "int8"))
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    args = parser.parse_args(argv)
    contract = ProfileContract("bench-v1", 768, (768,), "last_token", max_tokens=1024, document_prompt="Document: ")
    texts = mixed_length_texts(args.texts)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_fixture_repo(root / "bench-v1", FixtureSpec(seed=5, hidden=768, heads=12, ffn=1536, layers=4))
        print(f"{args.variant}, {len(texts)} mixed-length texts, fixture 768 hidden x 4 layers")
        print("| threads | bulk | query alone | query during bulk | wall time outside session.run |")
        print("| --- | --- | --- | --- | --- |")
        for threads in args.threads:
            print(measure(root, contract, args.variant, threads, texts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
