"""Write the small intersphinx inventories this documentation links to.

The build machine has no network, so intersphinx cannot download Python's
and numpy's ``objects.inv``.  This script writes inventories holding just
the objects our pages reference, with their addresses in the real online
documentation, in Sphinx's inventory format (version 2).  Run it after
referencing a new Python or numpy object::

    python docs/_inventories/make_inventories.py

``tests/test_docs_inventories.py`` checks that the files match this script.
"""

from __future__ import annotations

import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

_FUNCTIONS = "library/functions.html#$"
_STDTYPES = "library/stdtypes.html#$"
_EXC = "library/exceptions.html#$"
_ABC = "library/collections.abc.html#$"

PYTHON: list[tuple[str, str, str, str]] = [
    *[(name, "py:class", _FUNCTIONS, "-") for name in ("int", "float", "bool", "object", "complex")],
    *[
        (name, "py:class", _STDTYPES, "-")
        for name in ("str", "bytes", "bytearray", "memoryview", "list", "tuple", "dict", "set", "frozenset")
    ],
    *[
        (name, "py:exception", _EXC, "-")
        for name in (
            "BaseException",
            "Exception",
            "ConnectionError",
            "KeyError",
            "OSError",
            "PermissionError",
            "RuntimeError",
            "TimeoutError",
            "TypeError",
            "ValueError",
        )
    ],
    ("callable", "py:function", _FUNCTIONS, "-"),
    *[
        (f"collections.abc.{n}", "py:class", _ABC, "-")
        for n in ("Callable", "Iterable", "Iterator", "Mapping", "Sequence")
    ],
    ("concurrent.futures.Future", "py:class", "library/concurrent.futures.html#$", "-"),
    ("asyncio.run", "py:function", "library/asyncio-runner.html#$", "-"),
    ("asyncio.AbstractEventLoop", "py:class", "library/asyncio-eventloop.html#$", "-"),
    ("asyncio.events.AbstractEventLoop", "py:class", "library/asyncio-eventloop.html#asyncio.AbstractEventLoop", "-"),
    ("collections.deque", "py:class", "library/collections.html#$", "-"),
    ("datetime.datetime", "py:class", "library/datetime.html#$", "-"),
    ("enum.IntEnum", "py:class", "library/enum.html#$", "-"),
    ("logging", "py:module", "library/logging.html#module-logging", "-"),
    ("logging.Logger", "py:class", "library/logging.html#$", "-"),
    ("struct", "py:module", "library/struct.html#module-struct", "-"),
    ("multiprocessing", "py:module", "library/multiprocessing.html#module-multiprocessing", "-"),
    ("multiprocessing.Process", "py:class", "library/multiprocessing.html#$", "-"),
    ("multiprocessing.get_context", "py:function", "library/multiprocessing.html#$", "-"),
    ("multiprocessing.pool.Pool", "py:class", "library/multiprocessing.html#$", "-"),
    ("os.environ", "py:data", "library/os.html#$", "-"),
    ("os.PathLike", "py:class", "library/os.html#$", "-"),
    ("socket.socket", "py:class", "library/socket.html#$", "-"),
    ("threading.Thread", "py:class", "library/threading.html#$", "-"),
    ("threading.Event", "py:class", "library/threading.html#$", "-"),
    ("typing.Any", "py:data", "library/typing.html#$", "-"),
    ("iterable", "std:term", "glossary.html#term-iterable", "iterable"),
    ("sequence", "std:term", "glossary.html#term-sequence", "sequence"),
    ("mapping", "std:term", "glossary.html#term-mapping", "mapping"),
    ("path-like object", "std:term", "glossary.html#term-path-like-object", "path-like object"),
]

NUMPY: list[tuple[str, str, str, str]] = [
    ("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html#$", "-"),
    ("numpy.dtype", "py:class", "reference/generated/numpy.dtype.html#$", "-"),
    ("numpy.typing.NDArray", "py:data", "reference/typing.html#$", "-"),
]


def inventory(project: str, version: str, entries: list[tuple[str, str, str, str]]) -> bytes:
    """The bytes of an ``objects.inv`` (format 2) holding *entries*."""
    head = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "".join(f"{name} {role} 1 {uri} {disp}\n" for name, role, uri, disp in sorted(entries))
    return head.encode() + zlib.compress(body.encode(), 9)


FILES = {"python.inv": ("Python", "3", PYTHON), "numpy.inv": ("NumPy", "stable", NUMPY)}


def main() -> None:
    for filename, (project, version, entries) in FILES.items():
        (HERE / filename).write_bytes(inventory(project, version, entries))


if __name__ == "__main__":
    main()
