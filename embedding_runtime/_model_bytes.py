"""A variant's files read once into memory: the bytes the model is built from are the bytes hashed.

The tokenizer is built from its bytes (``Tokenizer.from_buffer``) and the ONNX
session from the graph's bytes with the sidecar handed over in memory
(``SessionOptions.add_external_initializers_from_files_in_memory``, which
onnxruntime copies while the session is created). So whatever happens to the
files on disk meanwhile (a backup restore that keeps sizes and times, a swap
racing the load), the sha256 of each file is that of the bytes the model was
made from: the canary proves those bytes, and its memory (``_proof_memo``) is
keyed on them.

The sidecar, the long read, is read on a thread of its own, and every file is
hashed there: a read and a sha256 release the interpreter's lock, so on a
second core they cost little wall time. But the thread needs the lock for a
moment between one call and the next, which a caller busy in native code
(``Tokenizer.from_buffer``, onnxruntime building a session; and any Nuitka-compiled
code) does not give up until it waits. So the caller reads the small files
itself and lets the thread into the sidecar's read before it builds the
tokenizer; the thread's next step, the sidecar's hash, starts when the caller
waits for the sidecar (:attr:`ModelBytes.sidecar`), and runs while onnxruntime
builds the session.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from embedding_runtime._layout import TOKENIZER_FILE, VARIANT_FILES

logger = logging.getLogger(__name__)


class ModelFileError(OSError):
    """A file of the variant cannot be read as the regular file it must be."""


class ModelBytes:
    """The tokenizer, graph and sidecar of one variant of one folder, as read; hashed on a thread.

    A file that cannot be read is raised by the accessor that needs it (never by :meth:`start`)."""

    def __init__(self, folder: Path, variant: str) -> None:
        tokenizer_name, graph_name, sidecar_name = VARIANT_FILES[variant]
        assert tokenizer_name == TOKENIZER_FILE
        self.folder, self.variant = folder, variant
        self.graph_name = graph_name  # path in the folder: onnx/model_quantized.onnx
        self._sidecar_name = sidecar_name
        self._tokenizer = b""
        self._graph = b""
        self._sidecar: bytes | None = None
        self._digests: dict[str, str] = {}
        self._failure: BaseException | None = None
        self._started = time.perf_counter()
        self._reading = threading.Event()  # the thread is about to read the sidecar (or has failed)
        self._all_read = threading.Event()
        self._thread = threading.Thread(target=self._work, name="model-bytes", daemon=True)

    @classmethod
    def start(cls, folder: Path, variant: str) -> ModelBytes:
        """Read the tokenizer and the graph of ``variant`` in ``folder``, and begin, on a thread, to read
        its sidecar (where there is one) and to hash them all."""
        files = cls(folder, variant)
        try:
            files._tokenizer = read_regular(folder / TOKENIZER_FILE)
            files._graph = read_regular(folder / files.graph_name)
        except BaseException as err:  # raised again by the accessors
            files._failed(err)
            return files
        files._thread.start()
        files._reading.wait()  # so the read runs while this thread is busy elsewhere
        return files

    def _failed(self, err: BaseException) -> None:
        self._failure = err
        self._reading.set()
        self._all_read.set()

    def _work(self) -> None:
        try:
            sidecar_path = self.folder / self._sidecar_name
            if os.path.lexists(sidecar_path):
                self._sidecar = read_regular(sidecar_path, reading=self._reading)
            self._reading.set()
            read = time.perf_counter()
            self._all_read.set()  # the caller, waiting on this, lets this thread straight on into the hash
            digests = {}
            if self._sidecar is not None:
                digests[self._sidecar_name] = _sha256(self._sidecar)
            digests.update({TOKENIZER_FILE: _sha256(self._tokenizer), self.graph_name: _sha256(self._graph)})
            self._digests = digests
            logger.debug(
                "%s [%s]: read %.3f s, hashed %.3f s after the start",
                self.folder, self.variant, read - self._started, time.perf_counter() - self._started,
            )  # fmt: skip
        except BaseException as err:  # raised again, in the caller's thread, by the accessor that waits
            self._failed(err)

    def _wait(self, event: threading.Event) -> None:
        event.wait()
        if self._failure is not None:
            raise self._failure

    @property
    def tokenizer(self) -> bytes:
        self._wait(self._reading)
        return self._tokenizer

    @property
    def graph(self) -> bytes:
        self._wait(self._all_read)
        return self._graph

    @property
    def sidecar(self) -> bytes | None:
        self._wait(self._all_read)
        return self._sidecar

    @property
    def sidecar_location(self) -> str | None:
        """The sidecar's name as the graph refers to it (beside the graph: its file name), if there is one."""
        return PurePosixPath(self._sidecar_name).name if self.sidecar is not None else None

    def digests(self) -> Mapping[str, str]:
        """sha256 of each file as read (path in the folder -> hex digest)."""
        self._join()
        if self._failure is not None:
            raise self._failure
        return dict(self._digests)

    def release(self) -> None:
        """Drop the bytes (the session and the tokenizer hold their own copies by now)."""
        self._join()
        self._tokenizer = self._graph = b""
        self._sidecar = None

    def _join(self) -> None:
        if self._thread.ident is not None:  # started (not when the small files could not be read)
            self._thread.join()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()  # releases the interpreter's lock while it runs


def read_regular(path: Path, *, reading: threading.Event | None = None) -> bytes:
    """The whole of ``path``, which must be a regular file (a FIFO would block, a folder cannot be read);
    ``reading`` is set when the read itself begins."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as err:
        raise ModelFileError(f"{path.name} cannot be opened ({err.strerror or type(err).__name__})") from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ModelFileError(f"{path.name} is not a regular file")
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as fh:
            if reading is not None:
                reading.set()
            return fh.read()  # to its end, however long it has grown: the hash covers what was read
    finally:
        os.close(fd)
