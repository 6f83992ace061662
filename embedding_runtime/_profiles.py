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
    ``pooling`` is ``"last_token"``, ``"mean"`` or ``"cls"``; ``matryoshka_dims`` lists the
    dimensions a caller may ask for (the full ``dimension`` among them: ``(384,)`` for a model
    without Matryoshka training); ``max_tokens`` truncates every text; the prompts are prepended
    to queries and documents; ``pad_token_id`` and ``padding_side`` shape a batch. The model is
    fed ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` when it declares that input).
    """

    profile_id: str
    dimension: int
    matryoshka_dims: tuple[int, ...]
    pooling: Pooling
    normalize: bool = True
    max_tokens: int = 1024
    pad_token_id: int = 0
    padding_side: PaddingSide = "right"
    query_prompt: str = ""
    document_prompt: str = ""
    # Bump when what is fed to the model changes (prompts, truncation) without a new model.
    input_version: int = 1
    # Per-batch token budget: rows x longest row, so memory stays bounded whatever the texts.
    # None: one max-length text's worth, which bench/bench_runtime.py found fastest for
    # attention models (a batch of long texts costs width^2 per row and gains nothing).
    batch_token_budget: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

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
        """Rows x longest row of one batch."""
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
    """Declare an application's own profile. Re-registering an id with another contract is an error."""
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
