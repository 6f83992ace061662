"""The runtime as the build suite reads it: not for apps (they use ``embedding_runtime``'s ``__all__``).

The build writes what the runtime reads back, so the two share one definition of
each: the artifact's layout (``data/`` and its folder names), the profile marker
(``.prepared.json``), the tiktoken cache manifest, the probe record, the
self-check's texts and schema, and the checks a folder or cache must pass. The
suite that ships with this runtime uses these names; they may change with it.
"""

from embedding_runtime._artifact import (
    BUILD_INFO_FILE,
    BUILD_INFO_SCHEMA,
    DATA_FOLDER,
    FORBID_NETWORK_ENV,
    HTTP_CLIENTS,
    MODELS_FOLDER,
    PROBE_RECORD_FILE,
    PROBE_TEXTS,
    SELF_CHECK_TEXTS,
    STDLIB_ACCELERATORS,
    TIKTOKEN_FOLDER,
    SelfCheckReport,
    data_path,
)
from embedding_runtime._cli import UsageParser
from embedding_runtime._completeness import folder_problem
from embedding_runtime._cpu import CpuFacts
from embedding_runtime._cpu import detect as detect_cpu
from embedding_runtime._engine import token_budget_batches
from embedding_runtime._hashing import FileDigest, sha256_file
from embedding_runtime._layout import (
    DEFAULT_PROFILE_ID,
    MARKER_NAME,
    MARKER_SCHEMA,
    VARIANT_FILES,
    VARIANTS,
    MarkerFile,
    PreparedMarker,
    files_for_variants,
    read_marker,
)
from embedding_runtime._locations import ProcessFacts, bundled_data_roots, model_roots
from embedding_runtime._probe import FP32_MIN_COSINE, INT8_CPU_MARGIN, ProbeRecord, read_probe_record
from embedding_runtime._profiles import get_profile
from embedding_runtime._records import RecordProblem, read_json_record
from embedding_runtime._self_check import self_check
from embedding_runtime._settings import THREADS_ENV
from embedding_runtime._tiktoken_cache import CACHE_ENV as TIKTOKEN_CACHE_ENV
from embedding_runtime._tiktoken_cache import (
    TIKTOKEN_MANIFEST_NAME,
    TIKTOKEN_MANIFEST_SCHEMA,
    CachedBlob,
    cache_report,
    encoding_problems,
    read_tiktoken_manifest,
)
from embedding_runtime._variant import VARIANT_ENV, decide_variant
from embedding_runtime._vectors import model_id

__all__ = [
    "BUILD_INFO_FILE",
    "BUILD_INFO_SCHEMA",
    "DATA_FOLDER",
    "DEFAULT_PROFILE_ID",
    "FORBID_NETWORK_ENV",
    "FP32_MIN_COSINE",
    "HTTP_CLIENTS",
    "INT8_CPU_MARGIN",
    "MARKER_NAME",
    "MARKER_SCHEMA",
    "MODELS_FOLDER",
    "PROBE_RECORD_FILE",
    "PROBE_TEXTS",
    "SELF_CHECK_TEXTS",
    "STDLIB_ACCELERATORS",
    "THREADS_ENV",
    "TIKTOKEN_CACHE_ENV",
    "TIKTOKEN_FOLDER",
    "TIKTOKEN_MANIFEST_NAME",
    "TIKTOKEN_MANIFEST_SCHEMA",
    "VARIANTS",
    "VARIANT_ENV",
    "VARIANT_FILES",
    "CachedBlob",
    "CpuFacts",
    "FileDigest",
    "MarkerFile",
    "PreparedMarker",
    "ProbeRecord",
    "ProcessFacts",
    "RecordProblem",
    "SelfCheckReport",
    "UsageParser",
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
    "read_json_record",
    "read_marker",
    "read_probe_record",
    "read_tiktoken_manifest",
    "self_check",
    "sha256_file",
    "token_budget_batches",
]
