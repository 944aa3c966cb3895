"""Run a pyepics program on compat, unchanged: ``python -m compat program.py ARGS``.

``python -m compat -m package.module ARGS`` runs a module the same way.  The
program sees what ``python program.py ARGS`` would give it (``sys.argv``,
``__name__ == '__main__'``, its directory first on ``sys.path``), and every
``import epics`` in it (or in the libraries it uses, such as ophyd) gives
compat: see :func:`compat.install`.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence

from compat._install import install

USAGE = """usage: python -m compat PROGRAM.py [ARG ...]
       python -m compat -m MODULE [ARG ...]

Run a program written for pyepics on compat, with no edit: every
'import epics' in it resolves to compat."""


def main(argv: Sequence[str] | None = None) -> None:
    """Run the program or module named in *argv* (default ``sys.argv[1:]``) on compat."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if args else sys.stderr)
        raise SystemExit(0 if args else 2)
    install()
    if args[0] == "-m":
        if len(args) < 2:
            print("python -m compat: -m needs a module name\n\n" + USAGE, file=sys.stderr)
            raise SystemExit(2)
        module = args[1]
        sys.argv = [module, *args[2:]]  # (runpy puts the module's path in argv[0])
        sys.path[0] = os.getcwd()
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    program = args[0]
    if not os.path.exists(program):
        print(f"python -m compat: can't open file {program!r}: no such file", file=sys.stderr)
        raise SystemExit(2)
    sys.argv = [program, *args[1:]]
    sys.path[0] = os.path.dirname(os.path.abspath(program))
    runpy.run_path(program, run_name="__main__")


if __name__ == "__main__":
    main()
