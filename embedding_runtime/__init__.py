"""Offline text-embedding runtime vendored into every desktop artifact.

It depends on onnxruntime, tokenizers and numpy only; nothing here may import
a build-time package (huggingface_hub, nox, tiktoken). Every module is private:
this package's ``__all__`` is the whole surface the app and the build use.

    from embedding_runtime import EmbeddingService
    service = EmbeddingService("local-text-retrieval-v1", app_name="local-notes")
    vectors = service.embed_documents(["first note", "second note"])
"""

import importlib
import os
from typing import TYPE_CHECKING

# onnxruntime's telemetry writes a device id and an event log under the user's HOME on import
# (creating a missing HOME); only this variable, set before the first import, stops it.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from embedding_runtime._artifact import (
    BUILD_INFO_FILE,
    BUILD_INFO_SCHEMA,
    DATA_FOLDER,
    FORBID_NETWORK_ENV,
    HTTP_CLIENTS,
    MODELS_FOLDER,
    PROBE_RECORD_FILE,
    PROBE_TEXTS,
    SELF_CHECK_SCHEMA,
    SELF_CHECK_TEXTS,
    STDLIB_ACCELERATORS,
    TIKTOKEN_FOLDER,
    SelfCheckReport,
    ServedFolder,
    data_path,
)
from embedding_runtime._completeness import folder_problem
from embedding_runtime._console import readable_output
from embedding_runtime._cpu import CpuFacts
from embedding_runtime._cpu import detect as detect_cpu
from embedding_runtime._errors import (
    EmbeddingRuntimeError,
    EmbeddingsDisabledError,
    InvalidTextError,
    ServiceClosedError,
    UnknownProfileError,
    VectorFormatError,
)
from embedding_runtime._hashing import sha256_file
from embedding_runtime._layout import (
    DEFAULT_PROFILE_ID,
    MARKER_NAME,
    MARKER_SCHEMA,
    TOKENIZER_FILE,
    VARIANT_FILES,
    VARIANTS,
    MarkerFile,
    PreparedMarker,
    files_for_variants,
    read_marker,
)
from embedding_runtime._locations import ModelRoot, ProcessFacts, app_data_dir, bundled_data_roots, model_roots
from embedding_runtime._profiles import LOCAL_TEXT_RETRIEVAL_V1, ProfileContract, get_profile, register_profile
from embedding_runtime._tiktoken_cache import CACHE_ENV as TIKTOKEN_CACHE_ENV
from embedding_runtime._tiktoken_cache import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    CachedBlob,
    cache_report,
    encoding_problems,
    read_manifest,
    use_bundled_tiktoken_cache,
)
from embedding_runtime._variant import VARIANT_ENV, decide_variant
from embedding_runtime._windows_version import ver_without_a_process

# Before anything imports onnxruntime (the service does, on first use): onnxruntime asks
# platform.system(), which on Windows would run `cmd /c ver`. See _windows_version.
ver_without_a_process()

if TYPE_CHECKING:
    from embedding_runtime._probe import ProbeRecord, read_probe_record
    from embedding_runtime._self_check import (
        ProcessWatch,
        artifact_build_info,
        self_check,
        self_check_main,
        watch_process,
    )
    from embedding_runtime._service import THREADS_ENV, EmbeddingService, State
    from embedding_runtime._vectors import model_id, pack_vector, text_key, unpack_vector

# Names that need numpy, imported on first use: the build's tools (nox among them) read the
# layout and the marker through this package without numpy installed.
_NUMPY_NAMES = {
    "ProbeRecord": "_probe",
    "read_probe_record": "_probe",
    "THREADS_ENV": "_service",
    "EmbeddingService": "_service",
    "State": "_service",
    "model_id": "_vectors",
    "pack_vector": "_vectors",
    "text_key": "_vectors",
    "unpack_vector": "_vectors",
    "ProcessWatch": "_self_check",
    "artifact_build_info": "_self_check",
    "self_check": "_self_check",
    "self_check_main": "_self_check",
    "watch_process": "_self_check",
}


def __getattr__(name: str) -> object:
    if name in _NUMPY_NAMES:
        module = importlib.import_module(f"{__name__}.{_NUMPY_NAMES[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "BUILD_INFO_FILE",
    "BUILD_INFO_SCHEMA",
    "DATA_FOLDER",
    "DEFAULT_PROFILE_ID",
    "FORBID_NETWORK_ENV",
    "HTTP_CLIENTS",
    "LOCAL_TEXT_RETRIEVAL_V1",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "MARKER_NAME",
    "MARKER_SCHEMA",
    "MODELS_FOLDER",
    "PROBE_RECORD_FILE",
    "PROBE_TEXTS",
    "SELF_CHECK_SCHEMA",
    "SELF_CHECK_TEXTS",
    "STDLIB_ACCELERATORS",
    "THREADS_ENV",
    "TIKTOKEN_CACHE_ENV",
    "TIKTOKEN_FOLDER",
    "TOKENIZER_FILE",
    "VARIANTS",
    "VARIANT_ENV",
    "VARIANT_FILES",
    "CachedBlob",
    "CpuFacts",
    "EmbeddingRuntimeError",
    "EmbeddingService",
    "EmbeddingsDisabledError",
    "InvalidTextError",
    "MarkerFile",
    "ModelRoot",
    "PreparedMarker",
    "ProbeRecord",
    "ProcessFacts",
    "ProcessWatch",
    "ProfileContract",
    "SelfCheckReport",
    "ServedFolder",
    "ServiceClosedError",
    "State",
    "UnknownProfileError",
    "VectorFormatError",
    "__version__",
    "app_data_dir",
    "artifact_build_info",
    "bundled_data_roots",
    "cache_report",
    "data_path",
    "decide_variant",
    "detect_cpu",
    "encoding_problems",
    "files_for_variants",
    "folder_problem",
    "get_profile",
    "model_id",
    "model_roots",
    "pack_vector",
    "read_manifest",
    "read_marker",
    "read_probe_record",
    "readable_output",
    "register_profile",
    "self_check",
    "self_check_main",
    "sha256_file",
    "text_key",
    "unpack_vector",
    "use_bundled_tiktoken_cache",
    "watch_process",
]
