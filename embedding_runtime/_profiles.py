"""Profile contracts: what vectors of a profile id mean.

The contract ships with the application, never inside a model folder, so a
user override folder can change the weights (same id, same behaviour) but not
the pooling, dimensions, prompts or token limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from embedding_runtime._errors import UnknownProfileError
from embedding_runtime._layout import DEFAULT_PROFILE_ID

Pooling = Literal["last_token", "mean", "cls"]
PaddingSide = Literal["right", "left"]


@dataclass(frozen=True)
class ProfileContract:
    """The compatibility contract of one profile id: what its vectors mean. Declare an app's own
    with :func:`register_profile`; a model folder cannot change it.

    Vectors with the same id are comparable, so any change to these fields needs a new id.

    What the runtime feeds the model: ``input_ids`` and ``attention_mask`` (int64, one row per
    text, padded to the longest row of the batch with ``pad_token_id`` on ``padding_side``), and
    ``token_type_ids`` (zeros) when the ONNX graph declares that input. Its first output is the
    per-token hidden state (batch x tokens x ``dimension``), which ``pooling`` turns into one vector.

    The profile folder holds the variants as ``onnx/model.onnx`` (fp32) and
    ``onnx/model_quantized.onnx`` (int8), each with its external weights beside it
    (``onnx/model.onnx_data``, ``onnx/model_quantized.onnx_data``), and ``tokenizer.json``.
    """

    profile_id: str
    """The id vectors and caches are stamped with, e.g. ``"pocket-mini-v1"``. Never the upstream
    model's name; bump it (``-v2``) when anything below changes."""
    dimension: int
    """The model's full vector width (its hidden size), e.g. 384 or 768."""
    matryoshka_dims: tuple[int, ...]
    """The widths a caller may ask for with ``dim=``: ``dimension`` must be among them. A model
    without Matryoshka training allows only its full width: ``(384,)``."""
    pooling: Pooling
    """How token states become one vector: ``"mean"`` (the average over real tokens, for
    sentence-transformers models), ``"cls"`` (the first token's state) or ``"last_token"`` (the
    last real token's state, for decoder-style embedders)."""
    normalize: bool = True
    """Scale every vector to unit length (after the Matryoshka cut), so a dot product is the cosine."""
    max_tokens: int = 1024
    """Texts are truncated to this many tokens (prompt included); at least 2."""
    pad_token_id: int = 0
    """The token id that pads shorter rows of a batch (masked out; any id the vocabulary has)."""
    padding_side: PaddingSide = "right"
    """Where padding goes: ``"right"`` or ``"left"``."""
    query_prompt: str = ""
    """Prepended to every query (``embed_queries``), e.g. ``"query: "`` for E5-style models."""
    document_prompt: str = ""
    """Prepended to every document (``embed_documents``)."""
    input_version: int = 1
    """Bump when what is fed to the model changes (prompts, truncation) without a new model:
    it is part of every vector's stamp, so old vectors are re-embedded."""
    batch_token_budget: int | None = None
    """Tokens per batch, counted as rows x longest row, so memory stays bounded whatever the
    texts. ``None`` (best left so): the service's own rule, 256 tokens on one intra-op thread and
    512 per thread from two on (at most 4096), which bench/bench_runtime.py found fastest on every
    model shape it measured; a text longer than that runs alone. When set, at least ``max_tokens``."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Free-form notes of the app's (not read by the runtime)."""

    def __post_init__(self) -> None:
        if self.dimension not in self.matryoshka_dims:
            raise ValueError(f"{self.profile_id}: the full dimension {self.dimension} must be an allowed dimension")
        if any(d <= 0 or d > self.dimension for d in self.matryoshka_dims):
            raise ValueError(f"{self.profile_id}: Matryoshka dimensions must lie in 1..{self.dimension}")
        if self.pooling not in ("last_token", "mean", "cls"):
            raise ValueError(f"{self.profile_id}: unknown pooling {self.pooling!r}")
        if self.max_tokens < 2 or self.token_budget < self.max_tokens:
            raise ValueError(f"{self.profile_id}: the token budget must hold at least one max-length text")

    @property
    def token_budget(self) -> int:
        """The batch this contract itself asks for: ``batch_token_budget``, else one max-length text
        (``max_tokens``). The service batches by ``batch_token_budget`` when it is set, else by its
        own rule (see ``batch_token_budget``)."""
        return self.batch_token_budget if self.batch_token_budget is not None else self.max_tokens

    def check_dim(self, dim: int | None) -> int:
        """The output dimension for ``dim`` (None: the full one); ValueError when not allowed."""
        if dim is None:
            return self.dimension
        if dim not in self.matryoshka_dims:
            allowed = ", ".join(map(str, self.matryoshka_dims))
            raise ValueError(f"dimension {dim} is not allowed for {self.profile_id}: pick one of {allowed}")
        return dim


LOCAL_TEXT_RETRIEVAL_V1 = ProfileContract(
    profile_id=DEFAULT_PROFILE_ID,
    dimension=768,
    matryoshka_dims=(32, 64, 128, 256, 512, 768),
    pooling="last_token",
    normalize=True,
    # 1024, not the model's 8192: 8192 caused a 12 GB RSS spike on pasted text.
    max_tokens=1024,
    query_prompt="Query: ",
    document_prompt="Document: ",
)

_REGISTRY: dict[str, ProfileContract] = {LOCAL_TEXT_RETRIEVAL_V1.profile_id: LOCAL_TEXT_RETRIEVAL_V1}


def register_profile(contract: ProfileContract) -> ProfileContract:
    """Declare an application's own profile, before its first :class:`EmbeddingService`; returns
    ``contract``. Registering the same contract again is harmless; an id already declared with
    another contract raises ``ValueError`` (bump the id)."""
    existing = _REGISTRY.get(contract.profile_id)
    if existing is not None and existing != contract:
        raise ValueError(f"profile {contract.profile_id} is already declared with another contract: bump the id")
    _REGISTRY[contract.profile_id] = contract
    return contract


def get_profile(profile_id: str) -> ProfileContract:
    try:
        return _REGISTRY[profile_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownProfileError(
            f"unknown profile {profile_id!r}: declare it with register_profile (known: {known})"
        ) from None
