"""What the download costs: packing an artifact, unpacking it, and verify's lock anchors (a benchmark).

On a verified artifact folder (default: the demo's PyInstaller build, ``nox -s demo``), it times
and sizes:

- ``archive-artifact``'s ``pack`` (Python's tarfile + gzip level 9, reproducible) against the best
  alternative, GNU tar's own reproducible recipe (``--sort=name --mtime --owner=0 --numeric-owner``
  piped through ``gzip -9 -n``), and ``zip`` packing;
- unpacking with verify's ``unpack`` against ``tar -xzf``;
- the lock tree verify derives from the wheelhouse: made from the wheels (cold) and re-checked (warm),
  against ``uv pip install --no-deps`` of the same wheels into a target folder, the nearest peer.

    python -m bench.bench_archive [DIST] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from build_hooks.archive import pack, unpack
from build_hooks.verification import lock as lock_module
from build_hooks.verification.lock import default_wheelhouse, lock_tree, locked_files, needed_names

REPO_ROOT = Path(__file__).resolve().parent.parent
EPOCH = 1_700_000_000


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_archive", description=__doc__.splitlines()[0])
    parser.add_argument("dist", nargs="?", type=Path, default=REPO_ROOT / "build/demo/dist/pyinstaller/local-notes")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    dist = args.dist.resolve()
    if not (dist.parent / f"{dist.name}.SHA256SUMS").is_file():
        print(
            f"ERROR: {dist} has no SHA256SUMS beside it: run `nox -s demo` (or verify-artifact) first", file=sys.stderr
        )
        return 2
    size = sum(p.stat().st_size for p in dist.rglob("*") if p.is_file())
    rows = [("what", f"seconds (best of {args.repeat})", "bytes")]
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as scratch_dir:
        scratch = Path(scratch_dir)
        ours = scratch / "ours.tar.gz"
        seconds = best_of(args.repeat, lambda: pack(dist, ours, EPOCH))
        rows.append(("pack .tar.gz (archive-artifact)", f"{seconds:.2f}", str(ours.stat().st_size)))
        ours_zip = scratch / "ours.zip"
        seconds = best_of(args.repeat, lambda: pack(dist, ours_zip, EPOCH))
        rows.append(("pack .zip (archive-artifact)", f"{seconds:.2f}", str(ours_zip.stat().st_size)))
        gnu = scratch / "gnu.tar.gz"
        names = [dist.name, *(f"{dist.name}.{s}" for s in ("SHA256SUMS", "cdx.json", "verify.json", "manifest.json"))]
        recipe = (
            f"tar --sort=name --mtime=@{EPOCH} --owner=0 --group=0 --numeric-owner --pax-option=delete=atime,"
            f"delete=ctime -cf - -C {dist.parent} {' '.join(names)} | gzip -9 -n > {gnu}"
        )
        seconds = best_of(args.repeat, lambda: subprocess.run(recipe, shell=True, check=True))
        rows.append(("pack .tar.gz (GNU tar | gzip -9 -n)", f"{seconds:.2f}", str(gnu.stat().st_size)))

        def ours_unpack() -> None:
            into = scratch / "unpacked"
            shutil.rmtree(into, ignore_errors=True)
            into.mkdir()
            unpack(ours, into)

        rows.append(("unpack (verify's unpack)", f"{best_of(args.repeat, ours_unpack):.2f}", ""))

        def tar_unpack() -> None:
            into = scratch / "tar-unpacked"
            shutil.rmtree(into, ignore_errors=True)
            into.mkdir()
            subprocess.run(["tar", "-xzf", str(ours), "-C", str(into)], check=True)

        rows.append(("unpack (tar -xzf)", f"{best_of(args.repeat, tar_unpack):.2f}", ""))

        lock = REPO_ROOT / "uv.lock"
        wheelhouse = default_wheelhouse(REPO_ROOT)
        work = scratch / "verify"
        shutil.rmtree(wheelhouse.parent / "lock-trees", ignore_errors=True)  # cold: as a fresh checkout
        cold = best_of(1, lambda: lock_tree(lock, wheelhouse, work))

        def fresh_process() -> None:  # what a new verify process does: every file hashed again
            lock_module._CHECKED.clear()
            lock_module._archive_digests.cache_clear()
            lock_tree(lock, wheelhouse, work)

        rehashed = best_of(args.repeat, fresh_process)
        warm = best_of(args.repeat, lambda: lock_tree(lock, wheelhouse, work))
        files = locked_files(lock, needed_names(lock))
        rows.append((f"lock tree, cold ({len(files)} wheels/sdists unpacked)", f"{cold:.2f}", ""))
        rows.append(("lock tree, kept, new process (every file re-hashed)", f"{rehashed:.2f}", ""))
        rows.append(("lock tree, kept, same process (stat check)", f"{warm:.2f}", ""))
        wheels = [str(wheelhouse / f.filename) for f in files if f.kind == "wheel"]
        target = scratch / "uv-target"
        uv = shutil.which("uv")
        if uv is not None:
            install = [uv, "pip", "install", "--no-deps", "--offline", "--target", str(target), "--python",
                       sys.executable, "--quiet", *wheels]  # fmt: skip
            seconds = best_of(1, lambda: subprocess.run(install, check=True))
            rows.append((f"uv pip install --target ({len(wheels)} wheels; no sdist)", f"{seconds:.2f}", ""))
    print(f"artifact {dist} ({size / 2**20:.0f} MiB)")
    width = max(len(r[0]) for r in rows)
    for name, seconds_text, size_text in rows:
        print(f"{name.ljust(width)}  {seconds_text.rjust(20)}  {size_text.rjust(12)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
