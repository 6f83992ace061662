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
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import numpy as np

from embedding_runtime import _cpu as cpu_facts
from embedding_runtime._completeness import folder_problem, loaded_bytes_problem
from embedding_runtime._engine import DisabledError, Engine, EngineSettings, Vectors, import_libraries
from embedding_runtime._errors import EmbeddingsDisabledError, InvalidTextError, ServiceClosedError
from embedding_runtime._layout import PreparedMarker, read_marker
from embedding_runtime._locations import ModelRoot, ProcessFacts, app_data_location, model_roots, override_root
from embedding_runtime._model_bytes import ModelBytes
from embedding_runtime._probe import ProbeRecord, bundled_probe_record, canary_problem, forged_marker_problem
from embedding_runtime._profiles import ProfileContract, get_profile
from embedding_runtime._proof_memo import is_proven, memo_path, proof_key, remember
from embedding_runtime._resolve import CANARY_MISMATCH, FORGED_MARKER, Resolution, resolve
from embedding_runtime._settings import DISABLE_ENV, not_understood, say_once, switch
from embedding_runtime._threads import thread_choice
from embedding_runtime._variant import VARIANT_ENV, VariantDecision, decide_variant
from embedding_runtime._vectors import model_id

logger = logging.getLogger(__name__)

DEFAULT_APP_NAME = "embedding-runtime"
# Text beyond this many characters per allowed token cannot survive truncation;
# cutting it first keeps a pasted megabyte from costing a megabyte of tokenizing.
_CHARS_PER_TOKEN_CAP = 64


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
        chosen, self._threads_reason = thread_choice(threads or (settings.threads if settings else None), self._env)
        self._settings = replace(settings, threads=chosen) if settings else EngineSettings(chosen)
        self._state = State.INIT
        self._disabled: DisabledError | None = None
        self._resolution: Resolution | None = None
        self._decision: VariantDecision | None = None
        self._engine: Engine | None = None
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
            except DisabledError as disable:
                self._disable(disable)
            except Exception as err:  # a load must end READY or DISABLED, never stay LOADING
                self._disable(DisabledError("load_failed", f"{type(err).__name__}: {err}"))
            except BaseException:  # Ctrl-C while loading: the next call may try again
                self._state = State.INIT
                raise
            self._state = State.READY
            logger.info(
                "loaded %s (%s, %s threads)", self._engine.model_file, self._engine.variant, self._engine.threads
            )

    def _ready(self) -> bool:
        return self._state is State.READY

    def _disable(self, disable: DisabledError) -> NoReturn:
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

    def _load(self) -> Engine:
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

    def _load_timed(self, clock: dict[str, float]) -> Engine:
        """Load, adding the seconds of each phase to ``clock`` (what is left is finding and checking folders)."""
        if switch(self._env, DISABLE_ENV):
            raise DisabledError("disabled_by_env", f"{DISABLE_ENV}={self._env.get(DISABLE_ENV, '').strip()}")
        self._cpu = self._cpu or cpu_facts.detect()
        self._decision = decide_variant(self._cpu, self._env, self._variant)
        requested = self._env.get(VARIANT_ENV, "auto") if self._variant is None else self._variant
        strict = requested.strip().lower() in ("fp32", "int8")
        settings = self._settings
        opened: list[Engine] = []

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
                ort, tokenizers = import_libraries(clock)  # not the folder's fault: raised through resolve
                versions.update(onnxruntime=ort.__version__, tokenizers=tokenizers.__version__)
                try:
                    engine = Engine.open(ort, tokenizers, self.contract, folder, variant, settings, clock, files)
                except DisabledError as failure:  # a folder that cannot load is skipped: the next one may
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
            import_libraries(clock)  # a library that does not import says so first, as when a folder loads
            raise DisabledError(*_why_nothing_serves(resolution, self._decision, self._roots, self.contract.profile_id))
        if strict and resolution.variant != self._decision.preferred:
            raise DisabledError(
                "variant_unavailable", f"{VARIANT_ENV} asks for {self._decision.preferred}, no folder has it"
            )
        return opened[-1]

    def _canary(
        self, engine: Engine, folder: Path, variant: str, record: ProbeRecord, versions: Mapping[str, str]
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

    def _run_canary(self, engine: Engine, folder: Path, variant: str, probe: ProbeRecord, proof: str) -> str | None:
        # As the build recorded them: documents, full dimension.
        prompted = [self.contract.document_prompt + text for text in probe.texts]
        problem = canary_problem(probe, variant, lambda _: engine.embed(prompted, engine.full_dim))
        self._canary_proof = proof
        count = f"{len(probe.texts)} probe text{'s' if len(probe.texts) != 1 else ''}"
        logger.debug("%s [%s]: canary %s (%s): %s", folder, variant, proof, count, problem or "passed")
        return problem


_EMBED_CODE = EmbeddingService._embed.__code__  # every call of a service runs inside this frame
_CLOSE_POLL_SECONDS = 0.005


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
