"""Build-time library of the desktop embedding pipeline.

Everything that runs on the build machine lives here: configuration, the
model profile preparation, and (later) the PyInstaller and Nuitka glue. The
scripts in ``scripts/`` are thin command lines over these modules.
"""
