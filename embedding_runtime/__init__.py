"""Offline text-embedding runtime vendored into every desktop artifact.

It depends on onnxruntime, tokenizers and numpy only; nothing here may import
a build-time package (huggingface_hub, nox, tiktoken). Every module is private:
``__all__`` is what an app calls, and it changes incompatibly only with a new
version (``api-snapshot.json`` records it; ``nox -s lint`` checks it).
(The build suite reads the runtime's layout and formats through
``embedding_runtime.build_api``, which apps do not need.)

    from embedding_runtime import EmbeddingService
    service = EmbeddingService("local-text-retrieval-v1", app_name="local-notes")
    vectors = service.embed_documents(["first note", "second note"])

An app declares its profile (:class:`ProfileContract`, :func:`register_profile`),
makes one :class:`EmbeddingService` per use, and answers ``--self-check`` with
:func:`self_check_main`. Where the model comes from, first to last:

1. the user's override folder, ``<app data>/embedding_models/<profile id>``
   (:func:`app_data_dir`; ``EMBEDDING_RUNTIME_MODELS_DIR`` names another);
2. the copy bundled in the artifact (``data/embedding_models/<profile id>``);
3. on a run from source, ``<source_root>/data/embedding_models/<profile id>``:
   ``source_root`` is the project folder holding ``data/``, which only the app
   knows, so pass it (frozen, it is ignored).

The first complete folder that proves itself (its files' sizes, its probe
texts reproducing the build's vectors) serves; int8 where the CPU runs it
well, else fp32 (``EMBEDDING_RUNTIME_VARIANT`` forces one). When nothing
serves, the service is ``DISABLED`` with a ``disabled_reason`` and the app
keeps working without vectors. Vectors are stored with :func:`pack_vector`
and their stamp (``service.model_id()``), and read back with
:func:`unpack_vector`, which refuses a stamp that is not the running model's.
"""

import os

# onnxruntime's telemetry writes a device id and an event log under the user's HOME on import
# (creating a missing HOME); only this variable, set before the first import, stops it.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from embedding_runtime._console import log_from_env, quiet_library_logger, readable_output
from embedding_runtime._errors import (
    AppDataUnavailableError,
    EmbeddingRuntimeError,
    EmbeddingsDisabledError,
    InvalidTextError,
    ServiceClosedError,
    UnknownProfileError,
    VectorFormatError,
)
from embedding_runtime._locations import ModelRoot, app_data_dir
from embedding_runtime._profiles import ProfileContract, register_profile
from embedding_runtime._self_check import artifact_build_info, self_check_main, watch_process
from embedding_runtime._service import EmbeddingService, State
from embedding_runtime._tiktoken_cache import use_bundled_tiktoken_cache
from embedding_runtime._vectors import pack_vector, unpack_vector
from embedding_runtime._windows_version import ver_without_a_process

# Before anything imports onnxruntime (the service does, on first use): onnxruntime asks
# platform.system(), which on Windows would run `cmd /c ver`. See _windows_version.
ver_without_a_process()
quiet_library_logger()  # the app decides what is printed
log_from_env(os.environ)  # EMBEDDING_RUNTIME_LOG=debug: the runtime's log on stderr

__version__ = "0.2.0"
"""The runtime's version; its public API (``__all__``) changes incompatibly only with a new version."""

__all__ = [
    "AppDataUnavailableError",
    "EmbeddingRuntimeError",
    "EmbeddingService",
    "EmbeddingsDisabledError",
    "InvalidTextError",
    "ModelRoot",
    "ProfileContract",
    "ServiceClosedError",
    "State",
    "UnknownProfileError",
    "VectorFormatError",
    "__version__",
    "app_data_dir",
    "artifact_build_info",
    "pack_vector",
    "readable_output",
    "register_profile",
    "self_check_main",
    "unpack_vector",
    "use_bundled_tiktoken_cache",
    "watch_process",
]
