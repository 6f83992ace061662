"""Bytecode compared as the interpreter executes it, not as ``==`` sees it.

``code == code`` in CPython 3.11 ignores ``co_stacksize``, ``co_qualname``, the
local kinds and the inline caches: a ``.pyc`` with its stack size set to 1
compares equal to the real one and crashes the interpreter. So every field of a
code object is compared, recursively through its constants, with the raw
instruction bytes including the inline caches (``_co_code_adaptive``, 3.11 to
3.13), and constants compared by type as well as value (``1``, ``1.0`` and
``True`` are equal in Python, not in bytecode). File names are the one
difference allowed: each freezer writes its own.

``marshal.dumps`` bytes are not compared: they depend on reference counts and
string interning in the process that wrote them.
"""

from __future__ import annotations

import io
import marshal
import struct
import types
from collections.abc import Iterator

# Derived from co_linetable (and deprecated from 3.12), or rewritten by every freezer.
_NOT_COMPARED = frozenset({"co_lnotab", "co_filename"})
_MAX_REPORTED = 3


def code_fields(code: types.CodeType) -> list[str]:
    """Every data field of a code object on this interpreter (methods such as ``co_lines`` aside)."""
    names = [n for n in dir(code) if n.startswith(("co_", "_co_")) and n not in _NOT_COMPARED]
    return [n for n in names if not callable(getattr(code, n))]


def code_differences(shipped: object, expected: types.CodeType) -> list[str]:
    """How ``shipped`` differs from ``expected``, field by field (the first few), or ``[]``."""
    if not isinstance(shipped, types.CodeType):
        return [f"holds a {type(shipped).__name__}, not a code object"]
    found = list(_differences(shipped, expected, expected.co_qualname or "<module>"))
    return found[:_MAX_REPORTED] + ([f"... ({len(found) - _MAX_REPORTED} more)"] if len(found) > _MAX_REPORTED else [])


def load_code(data: bytes) -> types.CodeType:
    """The one code object marshalled in ``data``, every byte of it used (trailing bytes are refused:
    nothing would run them, but every byte shipped must be one its source makes)."""
    stream = io.BytesIO(data)
    code = marshal.load(stream)
    if stream.tell() != len(data):
        raise ValueError(f"{len(data) - stream.tell()} bytes follow the code object")
    if not isinstance(code, types.CodeType):
        raise ValueError(f"holds a {type(code).__name__}, not a code object")
    return code


def _differences(a: types.CodeType, b: types.CodeType, where: str) -> Iterator[str]:
    for name in code_fields(b):
        left, right = getattr(a, name, None), getattr(b, name)
        if name == "co_consts":
            yield from _const_differences(left, right, where)
        elif type(left) is not type(right) or left != right:
            yield f"{where}: {name} differs"


def _const_differences(left: object, right: tuple[object, ...], where: str) -> Iterator[str]:
    if not isinstance(left, tuple) or len(left) != len(right):
        yield f"{where}: co_consts differs"
        return
    for index, (a, b) in enumerate(zip(left, right, strict=True)):
        if isinstance(b, types.CodeType) and isinstance(a, types.CodeType):
            yield from _differences(a, b, f"{where}.{b.co_name}")
        elif const_key(a) != const_key(b):
            yield f"{where}: co_consts[{index}] differs"


def const_key(value: object) -> object:
    """A key equal for two constants only when the interpreter would treat them as the same constant:
    the type is part of it, floats compare by their bits (``-0.0`` is not ``0.0``), code by every field."""
    if isinstance(value, types.CodeType):
        consts = tuple(const_key(c) for c in value.co_consts)
        return ("code", tuple((n, consts if n == "co_consts" else getattr(value, n)) for n in code_fields(value)))
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, complex):
        return ("complex", struct.pack("<dd", value.real, value.imag))
    if isinstance(value, tuple):
        return ("tuple", tuple(const_key(v) for v in value))
    if isinstance(value, frozenset):
        return ("frozenset", frozenset(const_key(v) for v in value))
    if isinstance(value, slice):
        return ("slice", const_key(value.start), const_key(value.stop), const_key(value.step))
    return (type(value).__qualname__, value)
