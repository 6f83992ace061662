"""A Nuitka user plugin (``--user-plugin=``, set by :func:`build_hooks.build_nuitka.nuitka_options`):
a Ctrl-C during the program's own start-up ends it with one line, never a crash.

Nuitka's program initialises the interpreter with Python's SIGINT handler, then
bootstraps in C: it imports ``os`` and its loader before any of the app's code
runs. A KeyboardInterrupt raised there is not survivable: 120 SIGINTs spread
over the first 120 ms of the demo's program gave 3 SIGABRTs ("Unexpected failure
of hard import of 'os'"), 2 SIGSEGVs and 15 tracebacks. So a C handler is set
before ``main`` (a constructor in an extra code file): a SIGINT writes
``ERROR: interrupted`` and ends the program with 130, as the launcher's own
handler does. Python sees a handler that is not its own and leaves it alone, so
just before the app's main module runs, Python's own handler is put back: from
the app's first line on, a Ctrl-C is a KeyboardInterrupt as in any Python
program (the launcher replaces it with its own handler at once). A SIGINT that
was ignored when the program started (``nohup``, a background job) stays ignored.

Linux and macOS only: on Windows a console's Ctrl-C reaches a process as a
control event, which Python does not turn into a KeyboardInterrupt before its
code runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nuitka.plugins.PluginBase import NuitkaPluginBase

_EARLY_INTERRUPT_C = r"""
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L /* sigaction: Nuitka compiles as plain C11 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void embedding_pipeline_interrupted(int signum) {
    static char const message[] = "ERROR: interrupted\n";
    ssize_t written = write(2, message, sizeof(message) - 1);
    (void)written;
    _exit(128 + signum);
}

__attribute__((constructor)) static void embedding_pipeline_early_interrupt(void) {
    struct sigaction current;
    if (sigaction(SIGINT, NULL, &current) != 0 || current.sa_handler != SIG_DFL) {
        return; /* ignored (nohup, a background job) or set by someone else: left as it is */
    }
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = embedding_pipeline_interrupted;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
}
#endif
"""

# Before the app's main module: Python's own handler back where the start-up's still is.
_RESTORE_PYTHON_HANDLER = """\
import signal as _embedding_pipeline_signal
if _embedding_pipeline_signal.getsignal(_embedding_pipeline_signal.SIGINT) is None:
    _embedding_pipeline_signal.signal(_embedding_pipeline_signal.SIGINT, _embedding_pipeline_signal.default_int_handler)
del _embedding_pipeline_signal
"""


class EarlyInterruptPlugin(NuitkaPluginBase):  # type: ignore[misc]
    """Ctrl-C during Nuitka's own start-up: one line and exit 130 (see the module docstring)."""

    plugin_name = "embedding-pipeline-early-interrupt"
    plugin_desc = "A Ctrl-C during the program's start-up ends it with one line, never a crash."

    def getExtraCodeFiles(self) -> dict[str, str]:  # noqa: N802 - Nuitka's name
        return {"early_interrupt.c": _EARLY_INTERRUPT_C}

    def createPreModuleLoadCode(self, module: Any) -> Iterator[tuple[str, str]]:  # noqa: N802 - Nuitka's name
        if module.isMainModule():
            yield _RESTORE_PYTHON_HANDLER, "Python's own SIGINT handler, before the app's code runs."
