"""The engine: a loaded tokenizer and ONNX session, the batching around them, and the pooling.

:meth:`Engine.open` makes one from a profile folder's variant (from the bytes the canary
hashed, when given), choosing the graph optimisation level bench/bench_runtime.py found
fastest; :meth:`Engine.embed` turns texts into vectors a token-budgeted batch at a time. A
folder that cannot load raises :class:`DisabledError` with one machine-readable reason.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from embedding_runtime._layout import VARIANT_FILES
from embedding_runtime._model_bytes import ModelBytes
from embedding_runtime._profiles import ProfileContract
from embedding_runtime._threads import default_token_budget

Vectors = npt.NDArray[np.float32]

# Texts tokenized at once: bounds the memory of a long call (10,000 texts cost what 1,000 do).
_TEXTS_PER_CHUNK = 256


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


class ContractMismatchError(Exception):
    """The model's output does not fit the profile contract."""


class DisabledError(Exception):
    """A folder (or the service) cannot serve: ``reason`` is the machine-readable word, ``detail`` the line."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(detail)


class Engine:
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
    ) -> Engine:
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
        except ContractMismatchError as err:
            raise DisabledError("contract_mismatch", f"{model_file}: {err}") from err
        except Exception as err:  # any failure to load is the same condition for the caller
            raise DisabledError("load_failed", f"{model_file}: {type(err).__name__}: {err}") from err
        if not np.isfinite(probe).all():
            raise DisabledError("load_failed", f"{model_file} computes NaN or Inf")
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
            raise ContractMismatchError(
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


def import_libraries(clock: dict[str, float]) -> tuple[Any, Any]:
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
    return DisabledError(f"{name}_missing", str(err))
