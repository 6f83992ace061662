"""Offline text-embedding runtime vendored into every desktop artifact.

It depends on onnxruntime, tokenizers and numpy only; nothing here may import
a build-time package (huggingface_hub, nox, tiktoken).

    from embedding_runtime import EmbeddingService
    service = EmbeddingService("local-text-retrieval-v1", app_name="local-notes")
    vectors = service.embed_documents(["first note", "second note"])
"""

from embedding_runtime.errors import (
    EmbeddingRuntimeError,
    EmbeddingsDisabledError,
    ServiceClosedError,
    UnknownProfileError,
    VectorFormatError,
)
from embedding_runtime.layout import DEFAULT_PROFILE_ID, MARKER_NAME, VARIANTS
from embedding_runtime.locations import ModelRoot, model_roots
from embedding_runtime.profiles import LOCAL_TEXT_RETRIEVAL_V1, ProfileContract, get_profile, register_profile
from embedding_runtime.service import EmbeddingService, State
from embedding_runtime.vectors import model_id, pack_vector, text_key, unpack_vector

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PROFILE_ID",
    "LOCAL_TEXT_RETRIEVAL_V1",
    "MARKER_NAME",
    "VARIANTS",
    "EmbeddingRuntimeError",
    "EmbeddingService",
    "EmbeddingsDisabledError",
    "ModelRoot",
    "ProfileContract",
    "ServiceClosedError",
    "State",
    "UnknownProfileError",
    "VectorFormatError",
    "__version__",
    "get_profile",
    "model_id",
    "model_roots",
    "pack_vector",
    "register_profile",
    "text_key",
    "unpack_vector",
]
