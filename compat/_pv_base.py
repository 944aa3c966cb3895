"""The shared state of :class:`compat.PV`, declared once for its mixins.

:class:`compat.PV` is assembled from mixins (:mod:`compat._pv_channel`,
:mod:`compat._pv_events`, :mod:`compat._pv_io`, :mod:`compat._attrs`).
:class:`PVBase` holds no behaviour: it declares, with their types, the
instance attributes that ``PV.__slots__`` provides and (for type checkers
only) the methods one mixin calls on another, so that each mixin checks on
its own.  Which thread and lock own each attribute is told in the module of
the mixin that writes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._attrs import PVAttributes

if TYPE_CHECKING:
    from ._callback_table import CallbackTable
    from ._fields import Fields
    from ._pv_events import _Relay

#: ``_args["access"]`` for access rights 0..3.
ACCESS_STRINGS = ("no access", "read-only", "write-only", "read/write")


class PVBase(PVAttributes):
    """The attributes every PV mixin may use (no methods at run time)."""

    if not TYPE_CHECKING:  # (hidden from mypy, which would take the mixins' writes to PV's slots for errors)
        __slots__ = ()

    # plain attributes (pyepics's)
    pvname: str
    form: str
    ftype: int | None
    chid: int | None
    context: int | None
    connection_timeout: float
    connection_callbacks: list[Callable[..., Any]]
    access_callbacks: list[Callable[..., Any]]
    # the channel binding and the monitor (compat._pv_channel; _lock guards them)
    _lock: threading.Lock
    _eng: Any
    _gen: int
    _relay: _Relay | None
    _access_token: int | None
    _detached: bool
    _ready: bool
    _auto_monitor: bool | int | None
    _user_max_count: int | None
    _monref: Any
    _monref_mask: int | None
    _monref_key: int | None
    _mdel_done: bool
    _monitor_delta_local: bool
    _monitor_last_value: Any
    # events and callbacks (compat._pv_events)
    _callbacks: CallbackTable  # (pyepics's plain attributes ``callbacks`` and ``verbose``, as properties)
    _verbose: bool
    _last_conn: bool | None
    _last_rights: int | None
    _told_conn: list[Callable[..., Any]] | None
    _told_access: list[Callable[..., Any]] | None
    _ntype: int
    _charval_dirty: bool
    _fast: Any
    _kept: dict[str, Any] | None
    _kept_stamp: int
    _float_fmt: tuple[Any, str, str] | None
    _applied: Any
    # reads and writes (compat._pv_io)
    _seen_writes: int
    _put_complete: bool | None

    if TYPE_CHECKING:

        def _initial_args(self, monitor_delta: float | None) -> Fields: ...

        def _callbacks_changed(self) -> None: ...

        def _setup_connected(self) -> bool: ...

        def _sync_access(self) -> None: ...

        def _watch_access(self) -> None: ...

        def _apply(self, resp: Any) -> Any: ...

        def _stale(self) -> bool: ...

        def _on_connection_event(self, eng: Any, state: str) -> None: ...

        def _on_access_event(self, eng: Any, rights: Any) -> None: ...

        def _on_monitor_event(self, sub: Any, resp: Any) -> None: ...

        @property
        def connected(self) -> bool: ...

        def wait_for_connection(self, timeout: float | None = None) -> bool: ...

        def force_read_access_rights(self) -> None: ...

        def clear_callbacks(self, with_access_callback: bool = False, with_connect_callback: bool = False) -> None: ...

        def get(self, *args: Any, **kwargs: Any) -> Any: ...  # (PVReadWrite.get; its signature is told there)

        def get_ctrlvars(self, timeout: float = 5, warn: bool = True) -> dict[str, Any] | None: ...
