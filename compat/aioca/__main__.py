"""``python -m compat.aioca program.py [args]``: run an aioca program on compat.aioca.

Installs compat.aioca as ``aioca`` (see :func:`compat.aioca.install`), then
runs *program.py* as ``__main__`` with the remaining arguments in
``sys.argv``.  ``python -m compat.aioca -m module [args]`` runs a module.
"""

from __future__ import annotations

import runpy
import sys

from . import install

USAGE = "usage: python -m compat.aioca program.py [args ...]  |  python -m compat.aioca -m module [args ...]"


def main(argv: list[str]) -> int:
    """Run the program named in *argv* with compat.aioca installed as aioca."""
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        print(USAGE, file=sys.stderr)
        return 2
    install()
    if argv[0] == "-m":
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
