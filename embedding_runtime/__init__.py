"""Offline text-embedding runtime vendored into every desktop artifact.

It depends on onnxruntime, tokenizers and numpy only; nothing here may import
a build-time package (huggingface_hub, nox, tiktoken).
"""

from embedding_runtime.layout import (
    DEFAULT_PROFILE_ID,
    MARKER_NAME,
    VARIANT_FILES,
    VARIANTS,
    PreparedMarker,
    files_for_variants,
    read_marker,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PROFILE_ID",
    "MARKER_NAME",
    "VARIANTS",
    "VARIANT_FILES",
    "PreparedMarker",
    "__version__",
    "files_for_variants",
    "read_marker",
]
