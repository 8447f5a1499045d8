"""Trim a pip ``--target`` tree for a Lambda layer: drop what Lambda never loads.

Used by ``layers/*/Makefile`` (run by ``sam build``). Removes test suites, Cython and stub
sources, C headers and static libraries, console scripts, ``__pycache__`` (the Makefile
precompiles afterwards), Arrow Flight, duplicate copies of versioned shared libraries, and
strips pyarrow's shared objects. numpy's bundled libraries (``numpy.libs``) are never stripped:
auditwheel patched them and ``strip`` can break that.

Usage: ``python tools/layer_trim.py PYTHON_DIR [--strip-tool TOOL] [--without-arrow-s3]``
(empty TOOL: no stripping).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

#: Directory names removed wherever they occur.
DROP_DIR_NAMES = frozenset({"tests", "__pycache__"})
#: Suffixes of files Lambda never reads (Cython sources/includes, type stubs, headers, static libs).
DROP_SUFFIXES = (".pyx", ".pxd", ".pxi", ".pyi", ".h", ".hpp", ".a")
#: Paths (relative to the layer's python/ dir) removed outright.
DROP_PATHS = (
    "bin",  # console scripts with a shebang pointing at the build machine's python
    "pyarrow/include",
    "pyarrow/src",
    "numpy/_core/include",
    "numpy/_core/lib",
    "pyarrow/flight.py",
)
#: Globs (relative to python/) removed: Arrow Flight and pyarrow's C++ test module.
DROP_GLOBS = (
    "pyarrow/_flight.*.so",
    "pyarrow/libarrow_flight.so*",
    "pyarrow/libarrow_python_flight.so*",
    "pyarrow/_pyarrow_cpp_tests.*.so",
)
#: pyarrow's S3 filesystem (AWS SDK for C++), dropped only with --without-arrow-s3: ~14 MiB.
ARROW_S3_GLOBS = ("pyarrow/_s3fs.*.so", "pyarrow/libarrow_s3.so*")
#: Directories whose shared objects are stripped (never the auditwheel ``*.libs`` folders).
STRIP_DIRS = ("pyarrow",)

_SONAME = re.compile(r"^(?P<stem>lib.+\.so)\.(?P<major>\d+)$")


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def _remove(path: Path) -> int:
    size = _size(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return size


def _dropped_dirs(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_dir() and path.name in DROP_DIR_NAMES:
            yield path


def _duplicate_libraries(folder: Path) -> Iterator[Path]:
    """Yield copies of ``libX.so.N`` named ``libX.so`` or ``libX.so.N.M.P`` (wheels cannot hold symlinks).

    The dynamic loader only looks for the soname ``libX.so.N``; the other names serve linking
    against the library, which never happens on Lambda.
    """
    for soname in sorted(folder.glob("lib*.so.*")):
        match = _SONAME.match(soname.name)
        if not match:
            continue
        size = soname.stat().st_size
        stem = match["stem"]
        candidates = [folder / stem, *folder.glob(f"{soname.name}.*")]
        for copy in candidates:
            if copy.is_file() and copy.stat().st_size == size:
                yield copy


def _remove_unused(root: Path, note: Callable[[str, int], None]) -> None:
    for directory in list(_dropped_dirs(root)):
        if directory.exists():
            note(f"{directory.name}/ dirs", _remove(directory))
    for rel in DROP_PATHS:
        path = root / rel
        if path.exists():
            note(rel, _remove(path))
    for pattern in DROP_GLOBS:
        for path in root.glob(pattern):
            note("arrow flight + cpp tests", _remove(path))
    for path in [p for p in root.rglob("*") if p.suffix in DROP_SUFFIXES and p.is_file()]:
        note(f"*{path.suffix}", _remove(path))


def _shrink_libraries(root: Path, strip_tool: str | None, note: Callable[[str, int], None]) -> None:
    for folder in (root / name for name in STRIP_DIRS):
        if not folder.is_dir():
            continue
        for copy in list(_duplicate_libraries(folder)):
            note("duplicate shared libraries", _remove(copy))
        for lib in sorted(folder.glob("*.so*")) if strip_tool else []:
            before = lib.stat().st_size
            subprocess.run([strip_tool, "--strip-unneeded", str(lib)], check=True)
            note(f"strip {folder.name}", before - lib.stat().st_size)


def trim(root: Path, strip_tool: str | None, *, without_arrow_s3: bool = False) -> dict[str, int]:
    """Trim ``root`` (a layer's python/ dir) in place; return bytes saved per rule."""
    saved: dict[str, int] = {}

    def note(rule: str, size: int) -> None:
        saved[rule] = saved.get(rule, 0) + size

    _remove_unused(root, note)
    for pattern in ARROW_S3_GLOBS if without_arrow_s3 else ():
        for path in root.glob(pattern):
            note("arrow s3 filesystem", _remove(path))
    _shrink_libraries(root, strip_tool, note)
    return saved


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the layer's python/ directory")
    parser.add_argument("--strip-tool", default="", help="strip binary for the target architecture")
    parser.add_argument(
        "--without-arrow-s3",
        action="store_true",
        help="also drop pyarrow.fs.S3FileSystem (S3 goes through boto3 instead)",
    )
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a directory")
    if not args.strip_tool and any((args.root / d).is_dir() for d in STRIP_DIRS):
        print("layer_trim: WARNING no strip tool for this architecture; shared objects left unstripped")
    saved = trim(args.root, args.strip_tool or None, without_arrow_s3=args.without_arrow_s3)
    for rule, size in sorted(saved.items(), key=lambda item: -item[1]):
        print(f"layer_trim: {size / 2**20:8.1f} MiB  {rule}")
    print(f"layer_trim: {sum(saved.values()) / 2**20:8.1f} MiB saved, {_size(args.root) / 2**20:.1f} MiB left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
