"""Vector cache stamps and the packed form vectors are stored in.

A stamp says everything that makes two vectors comparable:
``<profile>-<dim>d-<variant>-mlen<max tokens>-in<input version>``. A cache
entry whose stamp differs from the running model's must be re-embedded.
"""

from __future__ import annotations

import base64
import binascii
import re

import numpy as np
import numpy.typing as npt

from embedding_runtime._errors import VectorFormatError
from embedding_runtime._profiles import ProfileContract

_STAMP = re.compile(r"^(?P<profile>.+)-(?P<dim>\d+)d-(?P<variant>fp32|int8)-mlen(?P<mlen>\d+)-in(?P<input>\d+)$")


def model_id(contract: ProfileContract, dim: int, variant: str) -> str:
    """The stamp of vectors of ``dim`` made by ``variant`` under ``contract``."""
    dims = contract.check_dim(dim)
    return f"{contract.profile_id}-{dims}d-{variant}-mlen{contract.max_tokens}-in{contract.input_version}"


def stamp_dimension(stamp: str) -> int:
    match = _STAMP.match(stamp)
    if match is None:
        raise VectorFormatError(f"{stamp!r} is not a vector stamp like local-text-retrieval-v1-768d-int8-mlen1024-in1")
    return int(match["dim"])


def pack_vector(vector: npt.ArrayLike) -> str:
    """A 1-D vector as base64 of little-endian float16, for storing beside its stamp.

    Store it with ``service.model_id(dim)`` (the stamp) and read it back with
    :func:`unpack_vector`::

        stamp = service.model_id()
        row = (pack_vector(vector), stamp)
        vector = unpack_vector(row[0], stamp=row[1], expected_stamp=service.model_id())

    Raises:
        VectorFormatError: the vector is not 1-D, holds NaN or Inf, or overflows float16.
    """
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise VectorFormatError("only a finite 1-D vector can be packed")
    with np.errstate(over="ignore"):  # checked right below
        half = array.astype("<f2")
    if not np.isfinite(half).all():
        raise VectorFormatError("vector values overflow float16")
    return base64.b64encode(half.tobytes()).decode("ascii")


def unpack_vector(packed: str, *, stamp: str, expected_stamp: str) -> npt.NDArray[np.float32]:
    """The vector in ``packed`` (float32), or :class:`VectorFormatError` if it cannot be trusted.

    Args:
        packed: what :func:`pack_vector` returned.
        stamp: the stamp stored with it (``service.model_id(dim)`` when it was made).
        expected_stamp: the running model's stamp, ``service.model_id(dim)`` now.

    Raises:
        VectorFormatError: the stored ``stamp`` is not ``expected_stamp`` (re-embed the text),
            the length does not match the stamp's dimension, or the data holds NaN or Inf.
    """
    if stamp != expected_stamp:
        raise VectorFormatError(f"vector stamp {stamp!r} does not match the model's {expected_stamp!r}: re-embed")
    dim = stamp_dimension(expected_stamp)
    try:
        raw = base64.b64decode(packed.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as err:
        raise VectorFormatError(f"packed vector is not base64: {err}") from err
    if len(raw) != 2 * dim:
        raise VectorFormatError(
            f"packed vector has {len(raw) // 2} values (and {len(raw) % 2} stray bytes), stamp says {dim}"
        )
    vector = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if not np.isfinite(vector).all():
        raise VectorFormatError("packed vector holds NaN or Inf")
    return vector
