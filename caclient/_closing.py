"""``with obj:`` for objects that own threads or sockets: the block's end calls ``obj.close()``.

Shared by :class:`caclient._repeater.Repeater`, the test IOC handles of
:mod:`caclient.testing` and the fault proxy of ``tools.faultproxy``.
"""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_T = TypeVar("_T", bound="ClosingContext")


class ClosingContext:
    """Mixin: ``__enter__`` returns the object, ``__exit__`` calls its :meth:`close`."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
