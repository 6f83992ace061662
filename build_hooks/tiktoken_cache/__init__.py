"""Warm a tiktoken cache folder: the encoding files, named and checked as the runtime reads them."""

from build_hooks.tiktoken_cache.warm import MIRROR_ENV, WarmRequest, WarmResult, parse_from_file, warm_cache

__all__ = ["MIRROR_ENV", "WarmRequest", "WarmResult", "parse_from_file", "warm_cache"]
