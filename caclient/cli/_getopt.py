"""Command-line parsing as POSIX ``getopt(3)`` does it with GNU's extensions.

EPICS base's tools parse their options with the C library's ``getopt`` and
an option string such as ``":taicnhsSVe:f:g:l:#:d:0:w:p:F:"``.  Users rely
on what that allows, so this module does the same:

* single-letter options, several after one dash (``-tn``);
* an option's argument either attached (``-w5``, ``-lx``, ``-0x``) or as
  the next word (``-w 5``), even when that word starts with a dash;
* options may follow the operands (GNU permutes them to the front) unless
  *posixly_correct* is true, as caput asks for; ``--`` ends the options;
* a leading ``:`` in the option string: an unknown option is reported as
  ``'?'`` and a missing argument as ``':'``, with the letter in ``optopt``,
  and nothing is printed here.

Pure functions; no state between calls.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["Option", "getopt"]


class Option(NamedTuple):
    """One parsed option.

    Attributes
    ----------
    letter : str
        The option letter, or ``'?'`` (unknown option) or ``':'`` (missing
        argument).
    arg : str or None
        The option's argument, if it takes one.
    optopt : str
        The letter as given (what C's ``optopt`` holds).
    """

    letter: str
    arg: str | None
    optopt: str


def getopt(args: Sequence[str], optstring: str, posixly_correct: bool | None = None) -> tuple[list[Option], list[str]]:
    """Split *args* (without the program name) into options and operands.

    Parsing stops at the first ``'?'`` or ``':'`` result, as the tools exit
    there; the operands returned are then those seen so far.

    Parameters
    ----------
    args : sequence of str
        The command line after the program name.
    optstring : str
        As for C's ``getopt``: letters, each followed by ``:`` if it takes
        an argument; a leading ``:`` selects silent error reporting (the
        only mode supported).
    posixly_correct : bool, optional
        Stop at the first operand.  Default: whether ``POSIXLY_CORRECT`` is
        in the environment, as for GNU getopt.

    Returns
    -------
    options : list of Option
    operands : list of str
        The non-option words, in order.
    """
    if posixly_correct is None:
        posixly_correct = "POSIXLY_CORRECT" in os.environ
    spec = optstring.lstrip(":+-")
    takes_arg = {}
    for i, ch in enumerate(spec):
        if ch != ":":
            takes_arg[ch] = i + 1 < len(spec) and spec[i + 1] == ":"
    options: list[Option] = []
    operands: list[str] = []
    i = 0
    n = len(args)
    while i < n:
        word = args[i]
        i += 1
        if word == "--":
            operands.extend(args[i:])
            break
        if not word.startswith("-") or word == "-":
            operands.append(word)
            if posixly_correct:
                operands.extend(args[i:])
                break
            continue
        pos = 1
        while pos < len(word):
            ch = word[pos]
            pos += 1
            if ch == ":" or ch not in takes_arg:
                options.append(Option("?", None, ch))
                return options, operands
            if not takes_arg[ch]:
                options.append(Option(ch, None, ch))
                continue
            if pos < len(word):
                options.append(Option(ch, word[pos:], ch))
            elif i < n:
                options.append(Option(ch, args[i], ch))
                i += 1
            else:
                options.append(Option(":", None, ch))
                return options, operands
            break
    return options, operands
