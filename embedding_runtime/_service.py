"""The embedding service: lifecycle, loading once, and text to vectors.

States: INIT -> LOADING -> READY, or DISABLED with one machine-readable reason
when loading fails (sticky for the process: the cause will not go away by
itself); CLOSED after :meth:`EmbeddingService.close`. A bad input fails only
its own call.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from embedding_runtime import _cpu as cpu_facts
from embedding_runtime._completeness import folder_problem, loaded_bytes_problem
from embedding_runtime._errors import EmbeddingsDisabledError, InvalidTextError, ServiceClosedError
from embedding_runtime._layout import VARIANT_FILES, PreparedMarker, read_marker
from embedding_runtime._locations import ModelRoot, ProcessFacts, app_data_location, model_roots, override_root
from embedding_runtime._model_bytes import ModelBytes
from embedding_runtime._probe import ProbeRecord, bundled_probe_record, canary_problem, forged_marker_problem
from embedding_runtime._profiles import ProfileContract, get_profile
from embedding_runtime._proof_memo import is_proven, memo_path, proof_key, remember
from embedding_runtime._resolve import CANARY_MISMATCH, FORGED_MARKER, Resolution, resolve
from embedding_runtime._settings import DISABLE_ENV, THREADS_ENV, not_understood, say_once, switch
from embedding_runtime._variant import VARIANT_ENV, VariantDecision, decide_variant
from embedding_runtime._vectors import model_id

logger = logging.getLogger(__name__)

DEFAULT_APP_NAME = "embedding-runtime"
# Text beyond this many characters per allowed token cannot survive truncation;
# cutting it first keeps a pasted megabyte from costing a megabyte of tokenizing.
_CHARS_PER_TOKEN_CAP = 64
# Texts tokenized at once: bounds the memory of a long call (10,000 texts cost what 1,000 do).
_TEXTS_PER_CHUNK = 256

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class EngineSettings:
    """How the ONNX session runs. The defaults won bench/bench_runtime.py against every bare
    onnxruntime configuration (see the README's runtime section for the figures)."""

    threads: int
    # onnxruntime's memory arena reuses buffers between batches; the token budget bounds its size.
    arena: bool = True
    # Workers spin briefly for the next task instead of sleeping: faster batches, at the cost of
    # CPU while a call runs (not between calls).
    spinning: bool = True
    # Rows x longest row of one batch. None: the contract's batch_token_budget, else
    # default_token_budget(threads).
    token_budget: int | None = None
    # onnxruntime's graph optimisation level: "basic", "extended" or "all". None: default_optimization().
    optimization: str | None = None


# Tokens per batch when the contract fixes no budget. The sweeps' best budget followed the thread
# count, not the model's token limit: one thread wants small batches (256 was best, or within 1 %,
# on every shape: less padding, and no other thread to share the work with), two want 1024 to keep
# both busy. Past 4096 no shape gained anything but memory.
_ONE_THREAD_BUDGET = 256
_TOKENS_PER_THREAD = 512
_MAX_DEFAULT_BUDGET = 4096
# A batch's padded size (rows x longest row) is at most this times its real tokens, plus the allowance
# (short texts cost the call more than their padding). See token_budget_batches.
_PADDING_SLACK = 1.25
_PADDING_ALLOWANCE = 32


# A NodeProto's op_type field (field 4, length-delimited) holding "ReduceMean": how a graph that writes
# its normalisation out in primitive ops (an RMSNorm; a LayerNorm exported before opset 17) spells it.
_WRITTEN_OUT_NORMALISATION = b'"\nReduceMean'


def default_optimization(variant: str, threads: int = 1, graph: bytes = b"") -> tuple[str, str]:
    """The graph optimisation level bench/bench_runtime.py found fastest, and why.

    fp32: all. int8 on two threads or more: all, whose fused int8 kernels (MatMulIntegerToFloat,
    DynamicQuantizeMatMul) ran 6-13 % faster than basic on every shape, hand-built and exported
    from transformers. int8 on one thread depends on the model: a graph (``graph``, its bytes) that
    writes its normalisation out in primitive ops (``ReduceMean``: a Llama's RMSNorm) ran 9-15 %
    faster with all, whose fusions collapse those chains; one whose normalisation is already one
    ``LayerNormalization`` ran up to 20 % faster with basic, whose separate int8 products share
    one quantisation of each activation."""
    if variant != "int8":
        return "all", "fp32: every fusion onnxruntime has"
    if threads >= 2:
        return "all", f"int8 on {threads} threads: the fused int8 kernels were faster on every shape"
    if _WRITTEN_OUT_NORMALISATION in graph:
        return "all", "int8 on one thread, a graph that writes its normalisation out (ReduceMean): fused"
    return "basic", "int8 on one thread, normalisation already one operator: the unfused int8 kernels"


def default_token_budget(threads: int) -> int:
    """The batch budget (rows x longest row) of a service running ``threads`` intra-op threads:
    256 tokens on one thread, 512 per thread from two on (at most 4096)."""
    if threads <= 1:
        return _ONE_THREAD_BUDGET
    return min(_MAX_DEFAULT_BUDGET, _TOKENS_PER_THREAD * threads)


class State(enum.Enum):
    """Where a service is in its life (``service.state``): INIT until the first call loads the model,
    then READY, or DISABLED for the rest of the process (``disabled_reason`` says why); CLOSED after
    ``close()``."""

    INIT = "init"
    """Created; nothing loaded yet (the first embed call, or ``load()``, loads the model)."""
    LOADING = "loading"
    """A thread is loading the model; other calls wait for it."""
    READY = "ready"
    """The model serves."""
    DISABLED = "disabled"
    """No folder could serve, for the rest of the process; ``disabled_reason`` says why."""
    CLOSED = "closed"
    """``close()`` was called; every call raises :class:`ServiceClosedError`."""


class _ContractMismatchError(Exception):
    """The model's output does not fit the profile contract."""


class _DisabledError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(detail)


class EmbeddingService:
    """Turns texts into vectors with the profile's bundled (or user-supplied) model.

    Args:
        profile: a profile id declared with :func:`register_profile`, or a contract.
        app_name: names the user's app-data folder, where an override may live.
        roots: the folders to look in, in order (default: override, bundled, then ``source_root``).
        source_root: the app's project folder, the one holding ``data/``. From source, the prepared
            profile is found in its ``data/embedding_models`` (pass it, or nothing serves from
            source); frozen, the bundle's own ``data/`` serves first and this folder is last.
        env: environment for the overrides (default: ``os.environ``).
        cpu: CPU facts (default: detected once, without child processes).
        verify: re-hash model files against ``.prepared.json`` before loading.
        probe_record: the canary a folder must reproduce before it serves (default: the record
            bundled with the app, when ``roots`` is left to default; none for a source run).
        variant: ``"fp32"``, ``"int8"`` or ``"auto"`` (the CPU chooses); default: the environment's
            ``EMBEDDING_RUNTIME_VARIANT``, else ``"auto"``. A variant the folder lacks, or int8 on a CPU
            that blocks it, falls back to the other, as the environment's choice does.
        threads: intra-op threads of this service's model (default: ``EMBEDDING_RUNTIME_THREADS``,
            else every CPU up to 8), never more than the CPUs the process may use. A service for
            bulk re-indexing and one for interactive queries can differ; each loads its own model.
        remember_proofs: with the default roots, note a folder that passed the canary in the app's
            data folder (``.embedding-runtime/proven.json``), so that later launches, while its bytes
            are unchanged, re-prove it with one probe text instead of all of them; and prove a folder
            holding the very bytes the probe record was made from (the bundled copy) with one text
            (a self-check passes ``False``: it proves everything with every text, and writes nothing).
    """

    def __init__(
        self,
        profile: str | ProfileContract,
        *,
        app_name: str = DEFAULT_APP_NAME,
        roots: Sequence[ModelRoot] | None = None,
        env: Mapping[str, str] | None = None,
        cpu: cpu_facts.CpuFacts | None = None,
        verify: bool = False,
        probe_record: ProbeRecord | None = None,
        threads: int | None = None,
        settings: EngineSettings | None = None,
        source_root: Path | None = None,
        remember_proofs: bool = True,
        variant: str | None = None,
    ) -> None:
        if variant is not None and variant not in ("auto", "fp32", "int8"):
            raise ValueError(f"variant={variant!r}: pass 'fp32', 'int8' or 'auto'")
        self._variant = variant
        self.contract = profile if isinstance(profile, ProfileContract) else get_profile(profile)
        """The profile's contract (what the vectors mean)."""
        self._app_name = app_name
        self._env = os.environ if env is None else env
        facts = _facts(self._env)
        self._roots = list(roots) if roots is not None else model_roots(app_name, facts, source_root)
        self._cpu = cpu
        self._verify = verify
        if probe_record is None and roots is None:
            probe_record = bundled_probe_record(self.contract.profile_id, facts)
        self._probe = probe_record
        # With the default roots, a folder's passed canary is noted in the app's data folder (see _proof_memo);
        # an environment that names no such folder gets neither an override folder nor a memory (explain() says why).
        self._app_data = app_data_location(app_name, facts)
        remembers = remember_proofs and roots is None
        self._memo = memo_path(self._app_data) if remembers and isinstance(self._app_data, Path) else None
        self._shortcuts = remember_proofs  # a self-check, or doctor, proves every folder with every probe text
        self._settings_problems = not_understood(self._env, facts.platform)
        say_once(self._settings_problems)
        self._canary_seconds: float | None = None
        self._canary_proof: str | None = None
        self._load_seconds: dict[str, float] = {}
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        chosen, self._threads_reason = _thread_choice(threads or (settings.threads if settings else None), self._env)
        self._settings = replace(settings, threads=chosen) if settings else EngineSettings(chosen)
        self._state = State.INIT
        self._disabled: _DisabledError | None = None
        self._resolution: Resolution | None = None
        self._decision: VariantDecision | None = None
        self._engine: _Engine | None = None
        # The one lock, taken only to load (a C lock: a Ctrl-C cannot land between taking it and the
        # `with` that gives it back). Calls in flight are neither counted nor locked: a Ctrl-C can land
        # on any line, also before a count is taken back or inside threading.Condition's Python code
        # after it took its lock, and close() would wait for ever. close() asks the interpreter
        # instead which threads are inside a call of this service (see _calls_running).
        self._load_lock = threading.Lock()

    # -- public API ---------------------------------------------------------

    @property
    def state(self) -> State:
        """Where the service is in its life (see :class:`State`)."""
        return self._state

    @property
    def disabled_reason(self) -> str | None:
        """Why vectors are disabled (e.g. ``"model_file_missing"``, ``"cpu_blocked"``,
        ``"canary_mismatch"``, ``"onnxruntime_missing"``); ``None`` while not disabled."""
        return self._disabled.reason if self._disabled else None

    @property
    def variant(self) -> str | None:
        """The variant serving (``"fp32"`` or ``"int8"``); ``None`` before the model is loaded."""
        return self._engine.variant if self._engine else None

    def embed_queries(self, texts: Sequence[str], dim: int | None = None) -> Vectors:
        """Vectors for search queries (the profile's query prompt is applied). Shape (len(texts), dim)."""
        return self._embed(texts, self.contract.query_prompt, dim)

    def embed_documents(self, texts: Sequence[str], dim: int | None = None) -> Vectors:
        """Vectors for documents to be searched (the document prompt is applied)."""
        return self._embed(texts, self.contract.document_prompt, dim)

    async def aembed_queries(self, texts: Sequence[str], dim: int | None = None) -> Vectors:
        """:meth:`embed_queries` in a worker thread, for an asyncio app."""
        return await asyncio.to_thread(self.embed_queries, texts, dim)

    async def aembed_documents(self, texts: Sequence[str], dim: int | None = None) -> Vectors:
        """:meth:`embed_documents` in a worker thread, for an asyncio app."""
        return await asyncio.to_thread(self.embed_documents, texts, dim)

    def model_id(self, dim: int | None = None) -> str:
        """The stamp of this service's vectors of ``dim`` (loads the model to know the variant)."""
        self.load()
        assert self._engine is not None
        return model_id(self.contract, self.contract.check_dim(dim), self._engine.variant)

    def load(self) -> None:
        """Load now (otherwise the first call does). Raises :class:`EmbeddingsDisabledError`."""
        if self._ready():
            return
        with self._load_lock:
            if self._state is State.CLOSED:
                raise ServiceClosedError("the embedding service is closed")
            if self._disabled is not None:
                raise EmbeddingsDisabledError(self._disabled.reason, self._disabled.detail)
            if self._ready():  # another thread loaded it while this one waited
                return
            self._state = State.LOADING
            try:
                self._engine = self._load()
            except _DisabledError as disable:
                self._disable(disable)
            except Exception as err:  # a load must end READY or DISABLED, never stay LOADING
                self._disable(_DisabledError("load_failed", f"{type(err).__name__}: {err}"))
            except BaseException:  # Ctrl-C while loading: the next call may try again
                self._state = State.INIT
                raise
            self._state = State.READY
            logger.info(
                "loaded %s (%s, %s threads)", self._engine.model_file, self._engine.variant, self._engine.threads
            )

    def _ready(self) -> bool:
        return self._state is State.READY

    def _disable(self, disable: _DisabledError) -> NoReturn:
        self._disabled, self._state = disable, State.DISABLED
        logger.warning("embeddings disabled (%s): %s", disable.reason, disable.detail)
        raise EmbeddingsDisabledError(disable.reason, disable.detail) from None

    def explain(self) -> dict[str, Any]:
        """Everything a user needs to see why vectors work or not (the ``doctor`` report)."""
        if self._state is State.INIT:
            with suppress(EmbeddingsDisabledError):
                self.load()
        facts = _facts(self._env)
        override = override_root(self._app_name, facts)
        return {
            "profile": _contract_json(self.contract),
            "state": self._state.value,
            "disabled_reason": self.disabled_reason,
            "disabled_detail": self._disabled.detail if self._disabled else None,
            "override_folder": str(override / self.contract.profile_id) if isinstance(override, Path) else None,
            "app_data": _app_data_json(self._app_data),
            "settings": list(self._settings_problems),
            "roots": [{"path": str(r.path), "kind": r.kind} for r in self._roots],
            "variant": self._decision.to_json() if self._decision else None,
            "resolution": self._resolution.to_json() if self._resolution else None,
            "cpu": self._cpu.to_json() if self._cpu else None,
            "threads": self._settings.threads,
            "threads_reason": self._threads_reason,
            "optimization": self._optimization_report(),
            "canary": self._canary_report(),
            "load_seconds": dict(self._load_seconds),
        }

    def _optimization_report(self) -> dict[str, str] | None:
        if self._engine is None:
            return None
        level, why = self._engine.optimization
        return {"level": level, "why": why}

    def _canary_report(self) -> dict[str, Any]:
        if self._probe is None:
            return {"state": "unproven", "detail": "no probe record (a source run, or an app built without one)"}
        state = "proven" if self._engine is not None else "not run"
        seconds = round(self._canary_seconds, 4) if self._canary_seconds is not None else None
        floor = round(self._probe.int8_floor, 4)
        texts = len(self._probe.texts) if self._canary_proof == "full" else 1
        return {
            "state": state,
            "proof": self._canary_proof,
            "texts": texts,
            "seconds": seconds,
            "int8_floor": floor,
        }

    def close(self) -> None:
        """Refuse new calls, wait for the ones in flight on other threads, release the model."""
        self._state = State.CLOSED  # a call that has not yet seen it is inside _embed: waited for below
        while self._calls_running():
            time.sleep(_CLOSE_POLL_SECONDS)
        self._engine = None

    def __enter__(self) -> EmbeddingService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------

    def _embed(self, texts: Sequence[str], prompt: str, dim: int | None) -> Vectors:
        out_dim = self.contract.check_dim(dim)
        batch = _validated(texts, self.contract.max_tokens * _CHARS_PER_TOKEN_CAP)
        self.load()
        engine = self._engine
        if engine is None or self._state is State.CLOSED:  # close() waits while this frame runs
            raise ServiceClosedError("the embedding service is closed")
        if not batch:
            return np.zeros((0, out_dim), dtype=np.float32)
        return engine.embed([prompt + text for text in batch], out_dim)

    def _calls_running(self) -> bool:
        """Is another thread inside a call of this service now? Read from the threads' own stacks,
        so a call cut short anywhere (a Ctrl-C, any exception) is over once its frame is gone."""
        me = threading.get_ident()
        for ident, frame in sys._current_frames().items():
            current: FrameType | None = frame if ident != me else None
            while current is not None:
                if current.f_code is _EMBED_CODE and current.f_locals.get("self") is self:
                    return True
                current = current.f_back
        return False

    def _load(self) -> _Engine:
        started = time.perf_counter()
        clock: dict[str, float] = {}
        try:
            engine = self._load_timed(clock)
        finally:
            clock["total"] = time.perf_counter() - started
            clock["folders"] = clock["total"] - sum(v for k, v in clock.items() if k != "total")
            self._load_seconds = {k: round(v, 4) for k, v in clock.items()}
            logger.debug("load took %s", ", ".join(f"{k} {v:.3f} s" for k, v in clock.items()))
        return engine

    def _load_timed(self, clock: dict[str, float]) -> _Engine:
        """Load, adding the seconds of each phase to ``clock`` (what is left is finding and checking folders)."""
        if switch(self._env, DISABLE_ENV):
            raise _DisabledError("disabled_by_env", f"{DISABLE_ENV}={self._env.get(DISABLE_ENV, '').strip()}")
        self._cpu = self._cpu or cpu_facts.detect()
        self._decision = decide_variant(self._cpu, self._env, self._variant)
        requested = self._env.get(VARIANT_ENV, "auto") if self._variant is None else self._variant
        strict = requested.strip().lower() in ("fp32", "int8")
        settings = self._settings
        opened: list[_Engine] = []

        reference = _bundled_marker(self._roots, self.contract.profile_id)
        versions: dict[str, str] = {}

        def proves_itself(folder: Path, variant: str) -> str | None:
            if (forged := forged_marker_problem(folder, reference)) is not None:
                return forged  # no inference needed: it contradicts the bundled profile's own record
            # Only bytes a canary judges need to be the bytes hashed (a build's or a source run's service,
            # with no probe record, loads the files as they are, mapped by onnxruntime). They are read
            # and hashed on a thread from now on, while the libraries are imported and the tokenizer loads.
            files = ModelBytes.start(folder, variant) if self._probe is not None else None
            try:
                ort, tokenizers = _import_libraries(clock)  # not the folder's fault: raised through resolve
                versions.update(onnxruntime=ort.__version__, tokenizers=tokenizers.__version__)
                try:
                    engine = _Engine.open(ort, tokenizers, self.contract, folder, variant, settings, clock, files)
                except _DisabledError as failure:  # a folder that cannot load is skipped: the next one may
                    return f"{failure.reason}: {failure.detail}"
            finally:
                if files is not None:
                    files.release()  # onnxruntime and tokenizers hold their own copies (or failed)
            if engine.digests and (changed := loaded_bytes_problem(folder, engine.digests)) is not None:
                return f"load_failed: {changed}"
            if self._probe is not None:
                started = time.perf_counter()
                problem = self._canary(engine, folder, variant, self._probe, versions)
                self._canary_seconds = time.perf_counter() - started
                clock["canary"] = clock.get("canary", 0.0) + self._canary_seconds
                if problem is not None:
                    return problem
            opened.append(engine)
            return None

        self._resolution = resolve(
            self.contract.profile_id, self._roots, self._decision, verify=self._verify, accept=proves_itself
        )
        resolution = self._resolution
        if resolution.folder is None or resolution.variant is None:
            _import_libraries(clock)  # a library that does not import says so first, as when a folder loads
            raise _DisabledError(
                *_why_nothing_serves(resolution, self._decision, self._roots, self.contract.profile_id)
            )
        if strict and resolution.variant != self._decision.preferred:
            raise _DisabledError(
                "variant_unavailable", f"{VARIANT_ENV} asks for {self._decision.preferred}, no folder has it"
            )
        return opened[-1]

    def _canary(
        self, engine: _Engine, folder: Path, variant: str, record: ProbeRecord, versions: Mapping[str, str]
    ) -> str | None:
        """The canary of ``folder``: its shortest probe text when the model was made from the very bytes
        the record was (the bundled copy: only this CPU's kernels are left to prove) or when this app
        proved the same bytes on this machine before (see _proof_memo); else every probe text, and a
        full pass is noted for the next launch."""
        if self._shortcuts and record.made_from(engine.digests):
            return self._run_canary(engine, folder, variant, record.shortest(), "identical")
        memo, key = self._memo, None
        if memo is not None:
            facts = {
                "variant": variant,
                "contract": _contract_json(self.contract),
                "probe": [record.texts, hashlib.sha256(record.fp32.tobytes()).hexdigest(), record.int8_floor],
                "settings": repr(engine.settings),
                "cpu": self._cpu.to_json() if self._cpu else None,
                **versions,
            }
            key = proof_key(engine.digests, facts)
        remembered = memo is not None and key is not None and is_proven(memo, key)
        if remembered:
            return self._run_canary(engine, folder, variant, record.shortest(), "remembered")
        problem = self._run_canary(engine, folder, variant, record, "full")
        if problem is None and memo is not None and key is not None:
            remember(memo, key)
        return problem

    def _run_canary(self, engine: _Engine, folder: Path, variant: str, probe: ProbeRecord, proof: str) -> str | None:
        # As the build recorded them: documents, full dimension.
        prompted = [self.contract.document_prompt + text for text in probe.texts]
        problem = canary_problem(probe, variant, lambda _: engine.embed(prompted, engine.full_dim))
        self._canary_proof = proof
        count = f"{len(probe.texts)} probe text{'s' if len(probe.texts) != 1 else ''}"
        logger.debug("%s [%s]: canary %s (%s): %s", folder, variant, proof, count, problem or "passed")
        return problem


_EMBED_CODE = EmbeddingService._embed.__code__  # every call of a service runs inside this frame
_CLOSE_POLL_SECONDS = 0.005


class _Engine:
    """A loaded tokenizer + ONNX session, and the batching around them."""

    def __init__(
        self,
        contract: ProfileContract,
        session: Any,
        tokenizer: Any,
        model_file: Path,
        variant: str,
        settings: EngineSettings,
        digests: Mapping[str, str],
        optimization: tuple[str, str],
    ) -> None:
        self.contract, self.session, self.tokenizer = contract, session, tokenizer
        self.model_file, self.variant, self.threads = model_file, variant, settings.threads
        self.settings = settings
        self.optimization = optimization  # the graph optimisation level, and why
        self.digests = digests  # sha256 of each file the tokenizer and the session were made from
        self.token_budget = (
            settings.token_budget or contract.batch_token_budget or default_token_budget(settings.threads)
        )
        self.full_dim = contract.dimension
        inputs = {i.name for i in session.get_inputs()}
        self.feeds_token_types = "token_type_ids" in inputs
        self.output_name = session.get_outputs()[0].name

    @classmethod
    def open(
        cls,
        ort: Any,
        tokenizers: Any,
        contract: ProfileContract,
        folder: Path,
        variant: str,
        settings: EngineSettings,
        clock: dict[str, float],
        files: ModelBytes | None,
    ) -> _Engine:
        """Tokenizer and session of ``folder``'s ``variant``, their seconds added to ``clock``. Made from
        ``files`` (bytes read once and hashed meanwhile: the engine's ``digests``), as the canary needs;
        without, from the files as they are (no digests)."""
        model_file = folder / VARIANT_FILES[variant][1]
        try:
            started = time.perf_counter()
            if files is None:
                tokenizer = tokenizers.Tokenizer.from_file(str(folder / VARIANT_FILES[variant][0]))
            else:
                tokenizer = tokenizers.Tokenizer.from_buffer(files.tokenizer)
            tokenized = time.perf_counter()
            clock["tokenizer"] = clock.get("tokenizer", 0.0) + tokenized - started
            # The contract decides truncation and padding, whatever tokenizer.json carries.
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=contract.max_tokens)
            options = ort.SessionOptions()
            if settings.optimization:
                optimization = (settings.optimization, "set by the service's settings")
            else:
                graph = files.graph if files is not None else b""
                if files is None and variant == "int8" and settings.threads == 1:
                    graph = model_file.read_bytes()
                optimization = default_optimization(variant, settings.threads, graph)
            options.graph_optimization_level = _graph_level(ort, optimization[0])
            options.intra_op_num_threads = settings.threads
            options.inter_op_num_threads = 1
            options.enable_cpu_mem_arena = settings.arena
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spinning else "0")
            try:
                if files is None:
                    model: str | bytes = str(model_file)
                else:
                    model, sidecar = files.graph, files.sidecar
                    if sidecar is not None and files.sidecar_location is not None:
                        options.add_external_initializers_from_files_in_memory(
                            [files.sidecar_location], [sidecar], [len(sidecar)]
                        )
                session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
                del model
                digests = files.digests() if files is not None else {}
                engine = cls(contract, session, tokenizer, model_file, variant, settings, digests, optimization)
                probe = engine.embed(["probe"], contract.dimension)  # the first run: part of the session's cost
            finally:
                clock["session"] = clock.get("session", 0.0) + time.perf_counter() - tokenized
        except _ContractMismatchError as err:
            raise _DisabledError("contract_mismatch", f"{model_file}: {err}") from err
        except Exception as err:  # any failure to load is the same condition for the caller
            raise _DisabledError("load_failed", f"{model_file}: {type(err).__name__}: {err}") from err
        if not np.isfinite(probe).all():
            raise _DisabledError("load_failed", f"{model_file} computes NaN or Inf")
        return engine

    def embed(self, texts: Sequence[str], dim: int) -> Vectors:
        """Vectors of ``texts`` in their order; tokenized a chunk at a time, so memory stays bounded."""
        out = np.empty((len(texts), dim), dtype=np.float32)
        for start in range(0, len(texts), _TEXTS_PER_CHUNK):
            chunk = texts[start : start + _TEXTS_PER_CHUNK]
            encodings = self.tokenizer.encode_batch(list(chunk), add_special_tokens=True)
            ids = [e.ids for e in encodings]
            for rows in token_budget_batches([len(i) for i in ids], self.token_budget):
                out[[start + r for r in rows]] = self._run([ids[r] for r in rows], dim)
        return out

    def _run(self, batch_ids: Sequence[Sequence[int]], dim: int) -> Vectors:
        contract = self.contract
        width = max(1, max(len(row) for row in batch_ids))
        input_ids = np.full((len(batch_ids), width), contract.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(batch_ids), width), dtype=np.int64)
        for r, row in enumerate(batch_ids):
            span = slice(width - len(row), width) if contract.padding_side == "left" else slice(0, len(row))
            input_ids[r, span] = row
            mask[r, span] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if self.feeds_token_types:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self.session.run([self.output_name], feeds)[0]
        if hidden.ndim != 3 or hidden.shape[-1] != contract.dimension:
            raise _ContractMismatchError(
                f"the model returns shape {hidden.shape}; "
                f"{contract.profile_id} needs (batch, tokens, {contract.dimension})",
            )
        return pool(hidden, mask, contract, dim)


def _graph_level(ort: Any, name: str) -> Any:
    levels = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
    if name not in levels:
        raise ValueError(f"unknown graph optimisation level {name!r}: pick one of {', '.join(levels)}")
    return getattr(ort.GraphOptimizationLevel, levels[name])


def pool(hidden: npt.NDArray[Any], mask: npt.NDArray[np.int64], contract: ProfileContract, dim: int) -> Vectors:
    """Per-token states to one vector per row: pooling, Matryoshka cut, L2 normalisation."""
    if contract.pooling == "last_token":
        last = (mask.shape[1] - 1) if contract.padding_side == "left" else (mask.sum(axis=1) - 1)
        pooled = hidden[np.arange(hidden.shape[0]), last]
    elif contract.pooling == "cls":
        first = (mask.shape[1] - mask.sum(axis=1)) if contract.padding_side == "left" else 0
        pooled = hidden[np.arange(hidden.shape[0]), first]
    else:
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
    vectors = np.asarray(pooled[:, :dim], dtype=np.float32)
    if contract.normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def token_budget_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Row indices grouped so that rows x longest row <= ``budget``; similar lengths share a batch.

    Sorting by length keeps padding small, and a batch also ends before its padding would pass a
    quarter of its real tokens (and 32 more): in a large call neighbours differ little anyway, but
    a dozen mixed texts (the canary's) padded to their longest wasted a third of the work. The caller
    writes each batch's results back by index, so the caller's order is kept.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0  # tokens of the rows in ``current``
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        longest = max(lengths[index], 1)  # ascending order: the new row is the longest
        padded = (len(current) + 1) * longest
        if current and (padded > budget or padded > _PADDING_SLACK * (real + longest) + _PADDING_ALLOWANCE):
            batches.append(current)
            current, real = [], 0
        current.append(index)
        real += longest
    if current:
        batches.append(current)
    return batches


def default_threads(cpu_count: int | None) -> int:
    """Intra-op threads: every CPU, at most 8 (past that a small model gains nothing).

    A desktop app embeds in bursts (a re-index, a query) and waits for the result: half the
    CPUs halves its speed. An app that embeds in the background of interactive work passes
    ``threads=1`` (or sets EMBEDDING_RUNTIME_THREADS) for that service.
    """
    return max(1, min(8, cpu_count or 1))


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one (Linux; a container's
    or ``taskset``'s limit), else every CPU (``os.process_cpu_count`` from Python 3.13)."""
    counter = getattr(os, "process_cpu_count", None)
    if counter is not None:
        return max(1, counter() or 1)
    if hasattr(os, "sched_getaffinity"):
        with suppress(OSError):
            return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _thread_choice(requested: int | None, env: Mapping[str, str]) -> tuple[int, str]:
    """The threads a service runs, and why: the app's figure, else EMBEDDING_RUNTIME_THREADS, else
    the default; never more than the CPUs this process may use (100,000 threads do not finish)."""
    cpus = usable_cpus()
    raw = env.get(THREADS_ENV, "").strip()
    if requested is not None:
        wanted, why = requested, f"set by the app for this service ({requested})"
    elif raw.isascii() and raw.isdigit() and (digits := raw.lstrip("0")):
        wanted, why = int(digits) if len(digits) <= 6 else 10**6, f"{THREADS_ENV}={raw[:20]}"
    else:
        wanted = default_threads(cpus)
        why = f"every CPU this process may use ({cpus}), at most 8: embedding runs in bursts the app waits for"
        if raw:
            why = f"{THREADS_ENV}={raw[:20]!r} is not a whole number above 0, so ignored; {why}"
    if wanted > cpus:
        return cpus, f"{why}, lowered to the {cpus} CPUs this process may use"
    return wanted, why


def _validated(texts: Sequence[str], cap: int) -> list[str]:
    """The texts cut to what truncation keeps; an error naming the first text that cannot be embedded."""
    if isinstance(texts, str):
        raise TypeError("pass a list of texts, not a single str")
    batch = list(texts)
    for position, text in enumerate(batch):
        if not isinstance(text, str):
            raise TypeError(f"text {position} is {type(text).__name__}, not str")
        batch[position] = text = text[:cap]
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise InvalidTextError(
                position,
                f"text {position} cannot be embedded: character {err.start} is a lone surrogate "
                f"({text[err.start]!r}), which is not valid Unicode text (was it decoded from bad UTF-8?)",
            ) from None
    return batch


def _why_nothing_serves(
    resolution: Resolution, decision: VariantDecision, roots: Sequence[ModelRoot], profile_id: str
) -> tuple[str, str]:
    blocked = decision.blocked_by and not decision.int8_allowed
    if blocked and any(folder_problem(root.path / profile_id, "int8") is None for root in roots):
        return "cpu_blocked", f"only int8 files are present and int8 is blocked here: {decision.blocked_by}"
    present = [s for s in resolution.skipped if s.reason != "folder does not exist"]
    absent = len(resolution.skipped) - len(present)
    tried = "; ".join(f"{s.path} [{s.variant}]: {s.reason}" for s in present) or "none"
    tried += f" (and {absent} absent)" if absent else ""
    # A complete folder that was opened and refused says more than the files a folder lacks: the
    # first such refusal (the most preferred folder's) names the reason; the detail lists every one.
    refused = [s.reason.split(":", 1)[0] for s in present if s.reason.split(":", 1)[0] in _REFUSALS]
    if refused:
        return refused[0], f"no folder serves: {tried}"
    return "model_file_missing", f"no complete profile folder: {tried}"


def _import_libraries(clock: dict[str, float]) -> tuple[Any, Any]:
    """onnxruntime and tokenizers, their seconds added to ``clock`` (imported here, by name, so that both
    freezers see the imports); a library that does not import disables the service."""
    started = time.perf_counter()
    try:
        import onnxruntime
    except ImportError as err:
        raise _not_importable("onnxruntime", err) from err
    try:
        import tokenizers
    except ImportError as err:
        raise _not_importable("tokenizers", err) from err
    clock["imports"] = clock.get("imports", 0.0) + time.perf_counter() - started
    return onnxruntime, tokenizers


def _not_importable(name: str, err: ImportError) -> BaseException:
    """What a failed ``import name`` means: the package is missing or does not load, which disables
    the service; or a Ctrl-C landed during the import, which pybind11 reports as ImportError
    ("initialization failed") caused by the KeyboardInterrupt: that stays a Ctrl-C."""
    if isinstance(err.__cause__, KeyboardInterrupt) or isinstance(err.__context__, KeyboardInterrupt):
        return KeyboardInterrupt()
    return _DisabledError(f"{name}_missing", str(err))


# Skip reasons of a complete folder refused when opened (see proves_itself in EmbeddingService._load).
_REFUSALS = ("load_failed", "contract_mismatch", CANARY_MISMATCH, FORGED_MARKER)


def _bundled_marker(roots: Sequence[ModelRoot], profile_id: str) -> PreparedMarker | None:
    """The marker of the first bundled copy of the profile: what the app was built with."""
    for root in roots:
        if root.kind == "bundled" and (marker := read_marker(root.path / profile_id)) is not None:
            return marker
    return None


def _app_data_json(location: Path | str) -> dict[str, str | None]:
    """The app's data folder, or why there is none (then no override folder and no remembered proofs)."""
    if isinstance(location, Path):
        return {"folder": str(location), "problem": None}
    return {"folder": None, "problem": f"{location} (so no override folder, and no proof is remembered)"}


def _facts(env: Mapping[str, str]) -> ProcessFacts:
    facts = ProcessFacts.current()
    return ProcessFacts(facts.platform, env, facts.home, facts.executable, facts.frozen, facts.meipass)


def _contract_json(contract: ProfileContract) -> dict[str, Any]:
    return {
        "profile_id": contract.profile_id,
        "dimension": contract.dimension,
        "matryoshka_dims": list(contract.matryoshka_dims),
        "pooling": contract.pooling,
        "normalize": contract.normalize,
        "max_tokens": contract.max_tokens,
        "padding_side": contract.padding_side,
        "query_prompt": contract.query_prompt,
        "document_prompt": contract.document_prompt,
        "input_version": contract.input_version,
    }
