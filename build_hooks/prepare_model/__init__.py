"""Mirror a pinned hub model into an anonymous, verified profile folder."""

from build_hooks.config import parse_variants, revision_problem
from build_hooks.prepare_model.prepare import PrepareRequest, PrepareResult, ProfilePaths, prepare_profile
from build_hooks.prepare_model.retry import RetryPolicy
from build_hooks.prepare_model.sources import HubCacheSource, HubSource, LocalFolderSource, ModelSource, RemoteFile

__all__ = [
    "HubCacheSource",
    "HubSource",
    "LocalFolderSource",
    "ModelSource",
    "PrepareRequest",
    "PrepareResult",
    "ProfilePaths",
    "RemoteFile",
    "RetryPolicy",
    "parse_variants",
    "prepare_profile",
    "revision_problem",
]
