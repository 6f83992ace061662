"""Reading a JSON record anyone may have damaged: never more than a cap, never a traceback.

The profile's marker, the tiktoken manifest, the probe record and the build's
own records (plan, manifest, SBOM, stamp) all sit where a user, a full disk or
an attacker can change them. A reader gets the document, or ``None`` with the
reason (missing, unreadable, not a regular file, over the cap, not UTF-8 JSON,
nested too deeply), and decides what that means.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path


class RecordProblem(str):
    """Why a record could not be read (a ``str``: it goes into messages as it is); ``missing`` when
    there is no file at all, which callers often treat apart."""

    missing: bool

    def __new__(cls, message: str, *, missing: bool = False) -> RecordProblem:
        problem = super().__new__(cls, message)
        problem.missing = missing
        return problem


def read_json_record(path: Path, max_bytes: int) -> object | RecordProblem:
    """The JSON document at ``path``, or why not. Opens only a regular file (a FIFO would block)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return RecordProblem(f"{path.name} is missing", missing=True)
    except OSError as err:
        return RecordProblem(f"{path.name} cannot be read ({err.strerror or type(err).__name__})")
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which refuses a folder with an exception
        os.close(fd)
        return RecordProblem(f"{path.name} is not a regular file")
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as err:
            return RecordProblem(f"{path.name} cannot be read ({err.strerror or type(err).__name__})")
    if len(data) > max_bytes:
        return RecordProblem(f"{path.name} is larger than {max_bytes // 1024} KiB (not a record this suite writes)")
    try:
        document: object = json.loads(data.decode("utf-8"))
    except RecursionError:
        return RecordProblem(f"{path.name} is nested too deeply")
    except (UnicodeDecodeError, ValueError) as err:
        return RecordProblem(f"{path.name} is not valid JSON ({type(err).__name__})")
    return document
