"""One command line per pipeline step, all of one shape: ``main(argv) -> int`` with ``--help``.

Each module parses, calls its library, prints; only ``main`` turns an error
into an exit code (2 for usage errors, 1 for the rest, 130 for Ctrl-C).
"""
