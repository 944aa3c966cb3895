"""positional_arity's code-object fast path agrees with inspect.signature."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from caclient._callbacks import positional_arity


def _by_signature(func: Callable[..., Any]) -> int:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return 2
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return 2
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


def one(a: Any) -> None: ...
def two(a: Any, b: Any = None) -> None: ...
def posonly(a: Any, /, b: Any) -> None: ...
def kwonly(a: Any, *, b: Any = None) -> None: ...
def varargs(*args: Any) -> None: ...
def kwargs_only(**kw: Any) -> None: ...
def none() -> None: ...


class Handler:
    def method(self, sub: Any) -> None: ...
    def method2(self, sub: Any, response: Any) -> None: ...
    def method_var(self, *a: Any) -> None: ...
    @classmethod
    def cm(cls, a: Any, b: Any) -> None: ...
    @staticmethod
    def sm(a: Any) -> None: ...
    def __call__(self, a: Any) -> None: ...


@functools.wraps(two)
def wrapped(*args: Any, **kw: Any) -> None: ...


def with_signature(*args: Any) -> None: ...


with_signature.__signature__ = inspect.signature(one)  # type: ignore[attr-defined]

CALLABLES: list[Callable[..., Any]] = [
    one, two, posonly, kwonly, varargs, kwargs_only, none,
    lambda: None, lambda a: None, lambda a, b: None, lambda *a: None,
    Handler().method, Handler().method2, Handler().method_var, Handler.cm, Handler.sm, Handler(),
    Handler.method, functools.partial(two, 1), wrapped, with_signature, print, len,
]  # fmt: skip


@pytest.mark.parametrize("func", CALLABLES, ids=repr)
def test_arity_matches_inspect(func: Callable[..., Any]) -> None:
    assert positional_arity(func) == _by_signature(func)
