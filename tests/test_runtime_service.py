"""The embedding service end to end on the fixture model: vectors, lifecycle, stamps, CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytest

from devtools.corpus import mixed_length_texts
from embedding_runtime import (
    EmbeddingsDisabledError,
    EmbeddingService,
    ModelRoot,
    ServiceClosedError,
    State,
    VectorFormatError,
    pack_vector,
    unpack_vector,
)
from embedding_runtime._cpu import CpuFacts
from embedding_runtime._engine import Engine, EngineSettings, default_optimization, token_budget_batches
from embedding_runtime._profiles import ProfileContract, get_profile, register_profile
from embedding_runtime._threads import default_threads, default_token_budget
from embedding_runtime._vectors import model_id
from tests.runtime_fixtures import (
    FIXTURE_PROFILE,
    INT8_AGREEMENT_FLOOR,
    normalized,
    reference_hidden,
    write_profile,
)
from tests.support import REPO_ROOT, child_env

VNNI = CpuFacts("x86_64", frozenset({"AVX2", "AVX512VNNI"}), "GenuineIntel", 6, 106, "Xeon")
OLD_X86 = CpuFacts("x86_64", frozenset({"AVX"}), "GenuineIntel", 6, 42, "Core i7-2600")
BLOCKED = CpuFacts("x86_64", frozenset({"AVX2"}), "GenuineIntel", 6, 63, "Xeon E5-2666 v3")
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a",
    "offline search for local notes in a desktop app",
    "hello world",
]


@pytest.fixture
def model_root(tmp_path: Path, repo_files_a: dict[str, bytes]) -> Path:
    write_profile(tmp_path / "bundled", repo_files_a)
    return tmp_path / "bundled"


def service_for(
    root: Path, contract: ProfileContract = FIXTURE_PROFILE, cpu: CpuFacts = VNNI, **env: str
) -> EmbeddingService:
    return EmbeddingService(contract, roots=[ModelRoot(root, "bundled")], env=env, cpu=cpu)


def fp32_service(root: Path, contract: ProfileContract = FIXTURE_PROFILE) -> EmbeddingService:
    """fp32 for exact comparisons: dynamic int8 quantizes activations per batch, so its
    vectors move slightly with what else is in the batch, by an amount that depends on the CPU."""
    return service_for(root, contract, EMBEDDING_RUNTIME_VARIANT="fp32")


def expected_vectors(root: Path, variant: str, texts: list[str], contract: ProfileContract, dim: int) -> np.ndarray:
    """The reference: unbatched onnxruntime plus pooling written out for each mode."""
    hidden, mask = reference_hidden(root / contract.profile_id, variant, texts, contract.max_tokens)
    lengths = mask.sum(axis=1)
    if contract.pooling == "last_token":
        pooled = np.stack([hidden[i, lengths[i] - 1] for i in range(len(texts))])
    elif contract.pooling == "cls":
        pooled = hidden[:, 0]
    else:
        pooled = np.stack([hidden[i, : lengths[i]].mean(axis=0) for i in range(len(texts))])
    return normalized(pooled[:, :dim])


# -- vectors ------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["last_token", "mean", "cls"])
def test_each_pooling_mode_matches_the_reference(model_root: Path, pooling: str) -> None:
    contract = replace(FIXTURE_PROFILE, profile_id="fixture-v1", pooling=pooling)  # type: ignore[arg-type]
    vectors = fp32_service(model_root, contract).embed_documents(TEXTS)
    prompted = [contract.document_prompt + t for t in TEXTS]
    np.testing.assert_allclose(vectors, expected_vectors(model_root, "fp32", prompted, contract, 32), atol=2e-5)


@pytest.mark.parametrize("dim", [8, 16, 32])
def test_matryoshka_dimensions_cut_then_normalise(model_root: Path, dim: int) -> None:
    vectors = fp32_service(model_root).embed_queries(TEXTS, dim=dim)
    assert vectors.shape == (len(TEXTS), dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reference = expected_vectors(model_root, "fp32", ["Query: " + t for t in TEXTS], FIXTURE_PROFILE, dim)
    np.testing.assert_allclose(vectors, reference, atol=2e-5)


def test_dimension_outside_the_contract_fails_that_call_only(model_root: Path) -> None:
    service = service_for(model_root)
    with pytest.raises(ValueError, match="pick one of 8, 16, 32"):
        service.embed_documents(TEXTS, dim=12)
    assert service.embed_documents(TEXTS).shape == (4, 32)


def test_prompts_are_applied(model_root: Path) -> None:
    plain = replace(FIXTURE_PROFILE, profile_id="fixture-v1", query_prompt="", document_prompt="")
    with_prompts, without = fp32_service(model_root), fp32_service(model_root, plain)
    np.testing.assert_allclose(with_prompts.embed_queries(["cat"]), without.embed_queries(["Query: cat"]), atol=1e-6)
    np.testing.assert_allclose(
        with_prompts.embed_documents(["cat"]), without.embed_documents(["Document: cat"]), atol=1e-6
    )
    assert not np.allclose(with_prompts.embed_queries(["cat"]), with_prompts.embed_documents(["cat"]))


def test_batching_keeps_the_callers_order(model_root: Path) -> None:
    # Distinct texts of mixed lengths: a row returned in another text's place must show.
    words = ("cat", "dog", "bird", "fish", "tree", "river", "music", "book")
    texts = [" ".join([word] * n + ["note"]) for word, n in zip(words, (40, 1, 17, 3, 60, 9, 2, 33), strict=True)] * 3
    service = fp32_service(model_root)
    together = service.embed_documents(texts)
    one_by_one = np.concatenate([service.embed_documents([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=2e-5)
    # int8 quantizes activations per batch, so batched vectors move a little (how much depends on
    # the CPU's int8 kernels): each row must still be nearest to its own text, never a neighbour's.
    int8 = service_for(model_root)
    batched, alone = int8.embed_documents(texts), np.concatenate([int8.embed_documents([t]) for t in texts])
    similarity = batched @ alone.T
    assert (similarity.argmax(axis=1) % 8 == np.arange(len(texts)) % 8).all(), "rows came back in another order"
    assert np.diag(similarity).min() >= INT8_AGREEMENT_FLOOR


def test_token_budget_batches_sort_and_bound() -> None:
    lengths = [50, 3, 64, 10, 12, 64, 1]
    batches = token_budget_batches(lengths, budget=128)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 128
    assert batches[0] == [6, 1, 3, 4]  # shortest first, together


def test_a_batch_pads_at_most_a_quarter_of_its_tokens() -> None:
    """The canary's dozen mixed texts (token counts at the pin's size): budget-sized batches padded
    859 tokens to 1,293; now each batch is within a quarter (and 32 tokens) of its real ones."""
    lengths = [29, 61, 44, 75, 106, 76, 34, 137, 12, 98, 130, 57]
    batches = token_budget_batches(lengths, budget=1024)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        real, padded = sum(lengths[i] for i in batch), len(batch) * max(lengths[i] for i in batch)
        assert padded <= min(1024, 1.25 * real + 32), batch
    assert sum(len(b) * max(lengths[i] for i in b) for b in batches) < 1.3 * sum(lengths)
    assert len(batches) <= 4, "a few batches, not one text per run"


def _graph_bytes(*op_types: str, last: str | None = None) -> bytes:
    """A serialized ONNX graph made of ``op_types`` (what the runtime reads its ops from); its
    output tensor is named ``last`` when given."""
    from onnx import TensorProto, helper

    names = [f"t{i}" for i in range(len(op_types))] + [last or f"t{len(op_types)}"]
    nodes = [helper.make_node(op, [names[i]], [names[i + 1]]) for i, op in enumerate(op_types)]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, None)],
    )
    data: bytes = helper.make_model(graph).SerializeToString()
    return data


def test_the_graph_level_follows_the_variant_the_threads_and_how_the_graph_normalises() -> None:
    """bench_runtime on hand-built and transformers-exported graphs: fused kernels win for fp32 and
    for int8 on two threads; on one thread, int8 wins fused only where the graph writes its
    normalisation out (a Llama's RMSNorm: ReduceMean, Pow, Sqrt), and unfused where it is one op."""
    rms_norm = _graph_bytes("Pow", "ReduceMean", "Sqrt", "Reciprocal", "MatMul")
    layer_norm = _graph_bytes("LayerNormalization", "MatMul", "Softmax")
    # "ReduceMean" only as a tensor's name is not the op: the rule reads node types, not text.
    named_only = _graph_bytes("Relu", last="ReduceMean")
    assert default_optimization("fp32", 1, layer_norm)[0] == "all"
    assert default_optimization("fp32", 1, rms_norm)[0] == "all"
    assert default_optimization("int8", 2, layer_norm)[0] == "all"
    assert default_optimization("int8", 8, layer_norm)[0] == "all"
    assert default_optimization("int8", 1, rms_norm)[0] == "all"
    assert default_optimization("int8", 1, layer_norm)[0] == "basic"
    assert default_optimization("int8", 1, named_only)[0] == "basic"
    for level, why in (default_optimization("int8", 1, rms_norm), default_optimization("int8", 1, layer_norm)):
        assert "one thread" in why and level in ("all", "basic")


def test_doctor_says_which_graph_level_serves_and_why(model_root: Path) -> None:
    roots = [ModelRoot(model_root, "bundled")]
    for threads, variant, level in ((1, "int8", "basic"), (2, "int8", "all"), (1, "fp32", "all")):
        service = EmbeddingService(
            FIXTURE_PROFILE, roots=roots, cpu=VNNI, threads=threads, env={"EMBEDDING_RUNTIME_VARIANT": variant}
        )
        service.load()
        report = service.explain()["optimization"]
        assert report is not None and report["level"] == level, (threads, variant, report)
        assert report["why"], report
        service.close()
    disabled = EmbeddingService(FIXTURE_PROFILE, roots=roots, cpu=VNNI, env={"EMBEDDING_RUNTIME_DISABLE": "1"})
    assert disabled.explain()["optimization"] is None, "nothing serves, so no level was chosen"


def test_the_batch_budget_follows_the_threads_unless_the_contract_fixes_it(model_root: Path) -> None:
    assert [default_token_budget(t) for t in (1, 2, 4, 8, 64)] == [256, 1024, 2048, 4096, 4096]
    roots = [ModelRoot(model_root, "bundled")]
    free = replace(FIXTURE_PROFILE, batch_token_budget=None)
    for threads in (1, 2):
        service = EmbeddingService(free, roots=roots, cpu=VNNI, threads=threads)
        service.load()
        assert service._engine is not None and service._engine.token_budget == 256 * threads**2
    fixed = EmbeddingService(FIXTURE_PROFILE, roots=roots, cpu=VNNI, threads=2)
    fixed.load()
    assert fixed._engine is not None and fixed._engine.token_budget == FIXTURE_PROFILE.batch_token_budget == 256


def test_truncation_comes_from_the_contract_not_tokenizer_json(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    """A tokenizer.json with its own truncation (8) and fixed padding (128) must not change vectors."""
    files = dict(repo_files_a)
    config = json.loads(files["tokenizer.json"])
    config["truncation"] = {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0}
    config["padding"] = {
        "strategy": {"Fixed": 128},
        "direction": "Left",
        "pad_to_multiple_of": None,
        "pad_id": 0,
        "pad_type_id": 0,
        "pad_token": "[PAD]",
    }
    files["tokenizer.json"] = json.dumps(config).encode()
    write_profile(tmp_path / "odd", files)
    write_profile(tmp_path / "clean", repo_files_a)
    text = ["word " * 30]
    odd = fp32_service(tmp_path / "odd").embed_documents(text)
    clean = fp32_service(tmp_path / "clean").embed_documents(text)
    np.testing.assert_allclose(odd, clean, atol=1e-6)


def test_long_texts_are_truncated_at_max_tokens(model_root: Path) -> None:
    service = fp32_service(model_root)
    words = " ".join(["music"] * 5000)
    pasted = words + " " + "x" * 1_000_000  # a pasted megabyte
    vectors = service.embed_documents([pasted, " ".join(["music"] * 200)])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_models_declaring_token_type_ids_are_fed(tmp_path: Path) -> None:
    from devtools.fixture_model import FixtureSpec, fixture_files

    write_profile(tmp_path, fixture_files(FixtureSpec(seed=4, with_token_type_ids=True)))
    vectors = service_for(tmp_path).embed_documents(TEXTS)
    assert vectors.shape == (4, 32) and np.isfinite(vectors).all()


def test_int8_agrees_with_fp32(model_root: Path) -> None:
    int8 = service_for(model_root).embed_documents(TEXTS)
    fp32 = service_for(model_root, EMBEDDING_RUNTIME_VARIANT="fp32").embed_documents(TEXTS)
    assert (int8 * fp32).sum(axis=1).min() >= INT8_AGREEMENT_FLOOR


# -- lifecycle ----------------------------------------------------------------


def test_states_from_init_to_closed(model_root: Path) -> None:
    service = service_for(model_root)
    assert service.state is State.INIT
    service.embed_documents(["x"])
    assert service.state.value == "ready" and service.variant == "int8"
    service.close()
    assert service.state.value == "closed"
    with pytest.raises(ServiceClosedError):
        service.embed_documents(["x"])


@pytest.mark.parametrize(
    ("setup", "env", "cpu", "reason"),
    [
        ("empty", {}, VNNI, "model_file_missing"),
        ("both", {"EMBEDDING_RUNTIME_DISABLE": "1"}, VNNI, "disabled_by_env"),
        ("int8", {}, BLOCKED, "cpu_blocked"),
        ("fp32", {"EMBEDDING_RUNTIME_VARIANT": "int8"}, VNNI, "variant_unavailable"),
        ("garbage", {}, VNNI, "load_failed"),
    ],
)
def test_disabled_states_carry_one_reason_and_stick(
    tmp_path: Path, repo_files_a: dict[str, bytes], setup: str, env: dict[str, str], cpu: CpuFacts, reason: str
) -> None:
    if setup in ("both", "int8", "fp32"):
        write_profile(tmp_path, repo_files_a, ("fp32", "int8") if setup == "both" else (setup,))
    elif setup == "garbage":
        folder = write_profile(tmp_path, repo_files_a, ("int8",), marker=False)
        (folder / "onnx" / "model_quantized.onnx").write_bytes(b"not an onnx model")
    service = EmbeddingService(FIXTURE_PROFILE, roots=[ModelRoot(tmp_path, "bundled")], env=env, cpu=cpu)
    for _ in range(2):
        with pytest.raises(EmbeddingsDisabledError) as caught:
            service.embed_documents(["x"])
        assert caught.value.reason == reason
    assert service.state is State.DISABLED and service.disabled_reason == reason


def test_contract_mismatch_disables(model_root: Path) -> None:
    wide = register_profile(
        ProfileContract("fixture-wide-v1", dimension=64, matryoshka_dims=(64,), pooling="mean", max_tokens=64,
                        batch_token_budget=256)
    )  # fmt: skip
    (model_root / "fixture-v1").rename(model_root / "fixture-wide-v1")
    service = service_for(model_root, wide)
    with pytest.raises(EmbeddingsDisabledError, match="contract_mismatch"):
        service.embed_documents(["x"])


def test_bad_input_fails_the_call_not_the_service(model_root: Path) -> None:
    service = service_for(model_root)
    with pytest.raises(TypeError, match="not a single str"):
        service.embed_documents("just a string")
    with pytest.raises(TypeError, match="text 1 is int"):
        service.embed_documents(["ok", 3])  # type: ignore[list-item]
    assert service.embed_documents([]).shape == (0, 32)
    assert service.embed_documents(["", "fine"]).shape == (2, 32)
    assert service.state is State.READY


def test_concurrent_first_calls_load_once(model_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    service = service_for(model_root)
    caplog.set_level(logging.INFO, logger="embedding_runtime._service")
    barrier = threading.Barrier(6)
    results: list[np.ndarray] = []

    def call() -> None:
        barrier.wait()
        results.append(service.embed_documents(TEXTS))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()

    async def both() -> list[np.ndarray]:
        barrier.wait()  # the event loop thread joins the race too
        return list(await asyncio.gather(service.aembed_documents(TEXTS), service.aembed_queries(TEXTS)))

    barrier_runner = threading.Thread(target=barrier.wait)
    barrier_runner.start()
    async_results = asyncio.run(both())
    for thread in [*threads, barrier_runner]:
        thread.join()
    loads = [r for r in caplog.records if r.getMessage().startswith("loaded ")]
    assert len(loads) == 1
    assert len(results) == 4 and all(np.allclose(r, results[0]) for r in results)
    np.testing.assert_allclose(async_results[0], results[0], atol=1e-6)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 600.0) -> None:
    """Poll ``condition`` (an event some thread causes) with a generous timeout for busy machines."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f} s"
        time.sleep(0.001)


def test_close_waits_for_calls_in_flight(model_root: Path) -> None:
    service = service_for(model_root)
    service.load()
    inside, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def pause_inside_the_engine(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is Engine.embed.__code__:
            inside.set()
            release.wait()

    def call() -> None:
        sys.setprofile(pause_inside_the_engine)  # this thread only: the call holds still mid-flight
        try:
            outcome.append(service.embed_documents(["note " * 50] * 40))
        finally:
            sys.setprofile(None)

    worker = threading.Thread(target=call)
    worker.start()
    assert inside.wait(600), "the call never reached the engine"
    closer = threading.Thread(target=service.close)
    closer.start()
    # Either close() is looking for the call in flight again and again (it can only end when released),
    # or it has returned: both are events seen from outside, neither a matter of time.

    def close_is_waiting() -> bool:
        frame = sys._current_frames().get(closer.ident or 0)
        return frame is not None and frame.f_code is EmbeddingService.close.__code__

    wait_until(lambda: close_is_waiting() or not closer.is_alive(), "close() waiting or returning")
    assert closer.is_alive(), "close() returned while a call was still in flight"
    release.set()
    closer.join(600)
    worker.join(600)
    assert not closer.is_alive() and service.state is State.CLOSED
    assert isinstance(outcome[0], np.ndarray) and outcome[0].shape == (40, 32)


def test_close_returns_whatever_line_of_a_call_a_ctrl_c_lands_on(model_root: Path) -> None:
    """A KeyboardInterrupt raised at each line a call runs through, and as each function it calls
    starts (where a real Ctrl-C is delivered), then close() from the interrupted thread itself, and
    once from another thread: close() never waits for ever."""
    embed_code = EmbeddingService._embed.__code__

    def interrupted_call(service: EmbeddingService, stop_at: int | None, seen: list[int]) -> None:
        def count(event: str) -> None:
            seen[0] += 1
            if seen[0] == stop_at:
                raise KeyboardInterrupt

        def local(frame: FrameType, event: str, arg: object) -> Any:
            if event == "line":
                count(event)
            return local

        def tracer(frame: FrameType, event: str, arg: object) -> Any:
            if frame.f_code is embed_code:
                return local
            if frame.f_back is not None and frame.f_back.f_code is embed_code:
                count(event)  # a function the call calls, as it starts
            return None

        sys.settrace(tracer)
        try:
            service.embed_documents(["a note"])
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)

    def run(stop_at: int | None, close_here: bool) -> int:
        service, seen = service_for(model_root), [0]
        service.load()

        def call_then_close() -> None:
            interrupted_call(service, stop_at, seen)
            if close_here:
                service.close()

        worker = threading.Thread(target=call_then_close, daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), f"close() hangs after a Ctrl-C on line event {stop_at}"
        if not close_here:
            closer = threading.Thread(target=service.close, daemon=True)
            closer.start()
            closer.join(60)
            assert not closer.is_alive(), f"close() from another thread hangs (line event {stop_at})"
        with pytest.raises(ServiceClosedError):
            service.embed_documents(["after close"])
        return seen[0]

    total = run(None, close_here=True)
    assert total > 5
    for line in range(1, total + 1):
        run(line, close_here=line % 2 == 0)


def test_default_thread_count_leaves_small_machines_responsive() -> None:
    assert [default_threads(n) for n in (None, 1, 2, 4, 8, 16, 64)] == [1, 1, 2, 4, 8, 8, 8]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("100000", "EMBEDDING_RUNTIME_THREADS=100000, lowered to the 1 CPUs this process may use"),
        ("9" * 5000, "lowered to the 1 CPUs"),  # past int()'s digit limit: still a number, still lowered
        ("many", "EMBEDDING_RUNTIME_THREADS='many' is not a whole number above 0, so ignored"),
        ("-3", "is not a whole number above 0, so ignored"),
        ("²", "is not a whole number above 0, so ignored"),
    ],
)
def test_the_thread_setting_never_exceeds_the_cpus_the_process_may_use(value: str, said: str) -> None:
    """One CPU allowed (taskset), any thread setting: doctor reports one thread and says why."""
    result = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-m", "embedding_runtime", "doctor", "--json"],
        cwd=REPO_ROOT, env=child_env({"EMBEDDING_RUNTIME_THREADS": value}), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["threads"] == 1 and said in report["threads_reason"], report["threads_reason"]


def test_an_apps_thread_count_is_held_to_the_cpus_too(model_root: Path) -> None:
    from embedding_runtime._threads import usable_cpus

    service = EmbeddingService(FIXTURE_PROFILE, roots=[ModelRoot(model_root, "bundled")], threads=100_000, env={})
    report = service.explain()
    assert report["threads"] == usable_cpus() and "lowered to the" in report["threads_reason"]
    with pytest.raises(ValueError, match="threads must be at least 1"):
        EmbeddingService(FIXTURE_PROFILE, roots=[ModelRoot(model_root, "bundled")], threads=0)


def test_the_caller_chooses_the_variant_without_touching_the_environment(model_root: Path) -> None:
    """``variant=`` is the in-process choice (a build, verify): it wins over the environment, says so in
    ``explain()``, and the CPU's block list and the folder's variants still hold."""
    roots = [ModelRoot(model_root, "bundled")]
    env = {"EMBEDDING_RUNTIME_VARIANT": "int8"}
    for variant in ("fp32", "int8"):
        service = EmbeddingService(FIXTURE_PROFILE, roots=roots, env=env, cpu=VNNI, variant=variant)
        service.embed_documents(["hello"])
        assert service.variant == variant
        assert service.explain()["variant"]["reason"] == f"variant={variant}", service.explain()["variant"]
    auto = EmbeddingService(FIXTURE_PROFILE, roots=roots, env={}, cpu=VNNI, variant="auto")
    auto.embed_documents(["hello"])
    assert auto.variant == "int8", "auto lets a VNNI CPU take int8"
    with pytest.raises(ValueError, match="variant='fp16': pass 'fp32', 'int8' or 'auto'"):
        EmbeddingService(FIXTURE_PROFILE, roots=roots, variant="fp16")


# -- stamps and packed vectors ------------------------------------------------


def test_model_id_stamp_names_everything_that_changes_vectors(model_root: Path) -> None:
    service = service_for(model_root)
    assert service.model_id() == "fixture-v1-32d-int8-mlen64-in1"
    assert service.model_id(8) == "fixture-v1-8d-int8-mlen64-in1"
    assert (
        model_id(get_profile("local-text-retrieval-v1"), 768, "fp32")
        == "local-text-retrieval-v1-768d-fp32-mlen1024-in1"
    )


def test_pack_unpack_round_trip() -> None:
    stamp = "fixture-v1-8d-int8-mlen64-in1"
    vector = normalized(np.arange(1, 9, dtype=np.float32)[None])[0]
    packed = pack_vector(vector)
    np.testing.assert_allclose(unpack_vector(packed, stamp=stamp, expected_stamp=stamp), vector, atol=1e-3)


@pytest.mark.parametrize(
    ("packed", "stamp", "message"),
    [
        (pack_vector(np.ones(8)), "fixture-v1-8d-fp32-mlen64-in1", "does not match"),
        (pack_vector(np.ones(7)), "fixture-v1-8d-int8-mlen64-in1", "has 7 values"),
        ("AAB+", "fixture-v1-8d-int8-mlen64-in1", "has 1 values"),
        ("not base64!", "fixture-v1-8d-int8-mlen64-in1", "not base64"),
    ],
)
def test_unpack_rejects_what_cannot_be_trusted(packed: str, stamp: str, message: str) -> None:
    with pytest.raises(VectorFormatError, match=message):
        unpack_vector(packed, stamp=stamp, expected_stamp="fixture-v1-8d-int8-mlen64-in1")


def test_unpack_rejects_nan_and_pack_rejects_non_finite() -> None:
    import base64

    stamp = "fixture-v1-8d-int8-mlen64-in1"
    nan = base64.b64encode(np.full(8, np.nan, "<f2").tobytes()).decode()
    with pytest.raises(VectorFormatError, match="NaN or Inf"):
        unpack_vector(nan, stamp=stamp, expected_stamp=stamp)
    with pytest.raises(VectorFormatError):
        pack_vector(np.array([1.0, np.inf]))
    with pytest.raises(VectorFormatError, match="overflow"):
        pack_vector(np.array([1e6]))


# -- CLI and package boundaries -----------------------------------------------


def run_runtime(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "embedding_runtime", *args],
        cwd=REPO_ROOT,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_doctor_explains_choice_and_override_path(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    override = tmp_path / "models"
    write_profile(override, repo_files_a, profile_id="local-text-retrieval-v1")
    result = run_runtime(["doctor", "--json"], {"EMBEDDING_RUNTIME_MODELS_DIR": str(override)})
    report = json.loads(result.stdout)
    assert report["override_folder"] == str(override / "local-text-retrieval-v1")
    # The override is the only folder; it loads but breaks the contract, so nothing serves.
    assert report["resolution"]["kind"] is None
    assert [s["kind"] for s in report["resolution"]["skipped"]] == ["override", "override"]
    assert report["state"] == "disabled" and report["disabled_reason"] == "contract_mismatch"
    assert result.returncode == 1
    assert set(report["load_seconds"]) >= {"imports", "folders", "tokenizer", "session", "total"}
    readable = run_runtime(["doctor"], {"EMBEDDING_RUNTIME_MODELS_DIR": str(override)}).stdout
    assert "create " + str(override / "local-text-retrieval-v1") in readable
    load = next(line for line in readable.splitlines() if line.startswith("load "))
    assert re.fullmatch(r"load +\d+\.\d\d s \(imports [\d.]+, .*tokenizer [\d.]+, session [\d.]+.*\)", load), load


def test_embed_cli_prints_vectors_and_stamp(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    override = tmp_path / "models"
    write_profile(override, repo_files_a, profile_id="local-text-retrieval-v1")
    # The fixture model is 32 wide; the app declares its own profile in real use, the CLI takes an id.
    code = (
        "import sys, runpy\n"
        "from embedding_runtime._profiles import ProfileContract, register_profile\n"
        "register_profile(ProfileContract('fixture-v1', 32, (8, 16, 32), 'last_token', max_tokens=64,"
        " batch_token_budget=256, query_prompt='Query: '))\n"
        "sys.argv = ['embedding_runtime', '--profile', 'fixture-v1', 'embed', '--query', '--dim', '8', 'a', 'b']\n"
        "runpy.run_module('embedding_runtime', run_name='__main__')\n"
    )
    write_profile(override, repo_files_a)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=child_env({"EMBEDDING_RUNTIME_MODELS_DIR": str(override)}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model_id"].startswith("fixture-v1-8d-") and len(payload["vectors"]) == 2
    assert len(payload["vectors"][0]) == 8


def test_vectors_print_as_the_shortest_decimals_that_read_back_exactly() -> None:
    from embedding_runtime._cli import shortest_float32

    rng = np.random.default_rng(3)
    values = (rng.standard_normal((64, 32)) * rng.choice([1e-6, 0.05, 1.0, 300.0], (64, 1))).astype(np.float32)
    values[0, :6] = [0.1, 0.0, -0.0, 1e-8, np.finfo(np.float32).max, np.finfo(np.float32).tiny]
    printed = json.loads(json.dumps(shortest_float32(values).tolist()))
    assert (np.asarray(printed, dtype=np.float32) == values).all(), "every value reads back as the same float32"
    assert printed[0][0] == 0.1 and repr(printed[0][0]) == "0.1"
    assert max(len(repr(v)) for row in printed for v in row) <= 15  # sign, 9 digits, point, exponent


def test_embed_output_stays_compact_and_streams_over_many_lines(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    """600 stdin lines (several output pieces): one JSON document, every row a vector, about 11 bytes a
    value (round(6) printed float32 values as 17-digit float64, 19 bytes)."""
    from tests.test_runtime_hostile import CLI

    override = tmp_path / "models"
    write_profile(override, repo_files_a)
    lines = [f"note {n}: {'word ' * (n % 40)}" for n in range(600)]
    result = subprocess.run(
        [sys.executable, "-c", CLI, "embed"], input="\n".join(lines) + "\n", cwd=REPO_ROOT,
        env=child_env({"EMBEDDING_RUNTIME_MODELS_DIR": str(override), "EMBEDDING_RUNTIME_VARIANT": "fp32"}),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    vectors = np.asarray(payload["vectors"], dtype=np.float32)
    assert vectors.shape == (600, 32) and payload["model_id"] == "fixture-v1-32d-fp32-mlen64-in1"
    unprompted = replace(FIXTURE_PROFILE, query_prompt="", document_prompt="")  # as CLI registers it
    expected = fp32_service(override, unprompted).embed_documents(lines)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert len(result.stdout) / vectors.size < 12.5, f"{len(result.stdout) / vectors.size:.1f} bytes a value"


def test_runtime_imports_no_build_time_package() -> None:
    code = (
        "import sys, embedding_runtime, embedding_runtime._cli, embedding_runtime._service\n"
        "build_time = {'huggingface_hub', 'tiktoken', 'nox', 'build_hooks'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in build_time)\n"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_runtime_source_names_no_upstream_model() -> None:
    """The runtime knows profile ids; the upstream repo name lives in the build config only."""
    for path in (REPO_ROOT / "embedding_runtime").rglob("*.py"):
        assert "jina" not in path.read_text().lower(), path


def test_the_faster_defaults_leave_fp32_vectors_unchanged(model_root: Path) -> None:
    """New session options, budget and threads against the old ones (arena and spinning off, one
    thread, 16384 tokens a batch), on the benchmark's corpus: same vectors."""
    texts = mixed_length_texts(60)
    contract = replace(FIXTURE_PROFILE, batch_token_budget=None)
    old = EngineSettings(threads=1, arena=False, spinning=False, token_budget=16384)
    env = {"EMBEDDING_RUNTIME_VARIANT": "fp32"}
    roots = [ModelRoot(model_root, "bundled")]
    before = EmbeddingService(contract, roots=roots, env=env, cpu=VNNI, settings=old).embed_documents(texts)
    after = EmbeddingService(contract, roots=roots, env=env, cpu=VNNI).embed_documents(texts)
    assert (before * after).sum(axis=1).min() >= 0.9999
