"""The channel side of :class:`compat.PV`: binding, connection, the automatic monitor (a mixin).

A PV holds one caclient PV (the *channel*, ``_eng``) from the default
Context of :mod:`compat._runtime`; PV objects for the same name share it.
:meth:`PVChannel._chan` (re)binds it: on first use, and again when the
Context was replaced (after ``fork()`` or a reset; ``_gen`` tells).  Binding
registers the PV's :class:`compat._pv_events._Relay` for connection (and,
when there are access callbacks, access-rights) events.

Threads: everything here runs in the caller's thread, except
:meth:`PVChannel._setup_connected` (and the monitor it starts), which the
connection event also runs on an engine callback thread.

Locks: ``_lock`` guards the channel binding (``_eng``, ``_gen``,
``_relay``, ``_detached``, ``_ready``) and the monitor subscription
(``_monref*``, the relay's ``sub``/``sub_token``).  It is taken before any
caclient lock and never held while user code runs.  Connection fields in
``_args`` are written without it (single dict operations are atomic).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from caclient import AccessDeniedError, CAError

from . import _convert, dbr
from ._ca_context import poll as _poll
from ._ca_messages import CASeverityException, ChannelAccessGetFailure
from ._pv_base import ACCESS_STRINGS as _ACCESS_STRINGS
from ._pv_base import PVBase
from ._pv_events import _Relay
from ._runtime import RUNTIME, SETTINGS

_WRITES = RUNTIME.writes  # (never rebound)


class PVChannel(PVBase):
    """PV methods that bind the channel, follow its connection and run the automatic monitor."""

    __slots__ = ()

    # -- binding to the engine ------------------------------------------------------------
    def _chan(self) -> Any:
        """The caclient PV, (re)attached to the current default Context."""
        eng = self._eng
        if eng is not None and self._gen == RUNTIME.generation and not self._detached:
            return eng
        if RUNTIME.dead_relays:
            RUNTIME.reap()  # (freed PVs' engine callbacks: see _Relay)
        ctx = RUNTIME.context()
        gen = RUNTIME.generation
        if self._gen != gen and self._gen != -1:
            # A new Context (after fork() or a reset): the old lock may have been
            # held by a thread that does not exist here.  One thread replaces
            # it (marking the PV unbound, -1, under the runtime lock), so that
            # two threads never bind with two different locks.
            with RUNTIME.lock:
                if self._gen != gen and self._gen != -1:
                    self._lock = threading.Lock()
                    self._gen = -1
        with self._lock:
            if self._eng is not None and self._gen == gen and not self._detached:
                return self._eng
            (eng,) = ctx.get_pvs(self.pvname)
            self._eng, self._gen, self._detached = eng, gen, False
            self._ready = False
            self._seen_writes = _WRITES.get(eng, 0)
            self._applied = None
            self._last_conn = self._last_rights = None
            self._monref = self._monref_key = self._monref_mask = None
            self.chid = id(eng)
            self._args["chid"] = self.chid
            relay = self._relay = _Relay(self, eng)
            relay.conn_token = eng.connection_state_callback.add_callback(relay, run=True)
            if self.access_callbacks:
                self._watch_access()
        return eng

    def _unbind(self) -> None:
        with self._lock:
            relay, self._relay = self._relay, None
            self._detached = True
            self._ready = False
            self._clear_monitor_locked()
            token, self._access_token = self._access_token, None
        if relay is not None and self._gen == RUNTIME.generation:
            relay.drop()
            if token is not None:
                relay.eng.access_rights_callback.remove_callback(token)

    def _watch_access(self) -> None:
        """Have the engine report access-rights changes (only PVs with access callbacks need it).

        Without, the access fields are read from the channel when needed.
        """
        relay = self._relay
        if relay is not None and self._access_token is None:
            self._access_token = relay.eng.access_rights_callback.add_callback(relay.on_access, run=True)

    def _callbacks_changed(self) -> None:
        """The callbacks (or verbose, or client-side filtering) changed: keep the PV alive while it has
        callbacks, and pick push or pull for its monitor."""
        if self._callbacks or self.connection_callbacks or self.access_callbacks:
            RUNTIME.hold(self)
        else:
            RUNTIME.release(self)
        relay = self._relay
        if relay is not None and relay.sub is not None:
            with self._lock:
                relay = self._relay
                if relay is not None:
                    relay.deliver(self._wants_push())

    def _wants_push(self) -> bool:
        """Whether monitor updates must be applied as they come (see ``_Relay.deliver``)."""
        return bool(self._callbacks) or self._verbose or self._monitor_delta_local

    def _setup_connected(self) -> bool:
        """Record the connection's fields and start the monitor; False if not connected."""
        eng = self._eng
        # The reverse lookup (DNS, perhaps slow) runs before the lock is taken.
        host = RUNTIME.host_name(eng.server_address) if eng is not None else None
        with self._lock:
            if eng is not self._eng or eng is None or self._detached or not eng.connected:
                return False
            native = eng.native_data_type
            ntype = int(native) if native is not None and native <= dbr.DOUBLE else dbr.STRING
            nelm = eng.native_data_count or 0
            ftype = _convert.promote(ntype, self.form)
            name = _convert.type_name(ftype)
            rights = int(eng.access_rights)
            args = self._args
            args["nelm"] = nelm
            args["count"] = min(nelm, self._user_max_count or nelm)
            # (count is the channel's again: the next read re-applies the monitor's
            # newest update, which may have been applied before this ran)
            self._applied = None
            args["host"] = host
            args["type"] = args["typefull"] = name
            args["ftype"] = ftype
            args["chid"] = self.chid
            args["read_access"] = bool(rights & 1)
            args["write_access"] = bool(rights & 2)
            args["access"] = _ACCESS_STRINGS[rights & 3]
            if self._access_token is None:
                self._last_rights = rights & 3
            self.ftype = ftype
            self._ntype = ntype
            self._fast = _convert.TIME_SCALARS.get(ftype) if nelm == 1 else None
            if nelm == 1 and ntype in (dbr.FLOAT, dbr.DOUBLE):
                if self._float_fmt is None:
                    self._float_fmt = (None, "", "")  # (filled in once the precision is known)
            else:
                self._float_fmt = None
            self._start_monitor_locked()
            self._ready = True  # (last: a thread that sees it set finds the monitor running)
        if args["monitor_delta"] is not None and not self._mdel_done:
            self._mdel_done = True
            self._apply_monitor_delta()
        return True

    def _apply_monitor_delta(self) -> None:
        # pyepics' documented (and in 3.5.10 inert) rule: write MDEL, else filter here.
        if self._args["count"] != 1 or self._ntype not in (dbr.FLOAT, dbr.DOUBLE):
            return
        record = self.pvname.split(".", 1)[0]
        try:
            (mdel,) = RUNTIME.context().get_pvs(f"{record}.MDEL")
            mdel.wait_for_connection(timeout=self.connection_timeout)
            if not mdel.access_rights & 2:
                raise AccessDeniedError(f"{record}.MDEL: no write access")
            mdel.write(float(self._args["monitor_delta"]), wait=False, notify=False)
        except (CAError, ValueError, TypeError):
            self._monitor_delta_local = True  # (filtered as updates come: pushed)
            self._callbacks_changed()

    # -- the automatic monitor -----------------------------------------------------------------
    def _check_monitor_locked(self) -> None:
        if self._ready:
            self._start_monitor_locked()

    def _start_monitor_locked(self) -> None:
        """Start, change or stop the automatic monitor as the settings say (connected, ``_lock`` held)."""
        count = self._args["count"]
        if count is None:
            return
        if self._auto_monitor is None:
            self._auto_monitor = count < SETTINGS.AUTOMONITOR_MAXLENGTH
        if not self._auto_monitor:
            self._clear_monitor_locked()
            return
        mask = SETTINGS.DEFAULT_SUBSCRIPTION_MASK if self._auto_monitor is True else int(self._auto_monitor)
        if self._monref is not None and self._monref_key == self.ftype and self._monref_mask == mask:
            return
        self._clear_monitor_locked()
        sub = self._eng.subscribe(data_type=self.ftype, data_count=self._user_max_count or None, mask=mask)
        relay = self._relay
        assert relay is not None  # (bound: connected)
        relay.watch(sub, push=self._wants_push())
        self._monref = sub
        self._monref_key = self.ftype
        self._monref_mask = mask

    def _clear_monitor_locked(self) -> None:
        self._monref = self._monref_key = self._monref_mask = None
        relay = self._relay
        if relay is not None:
            relay.drop_monitor()

    def _check_auto_monitor(self) -> None:
        with self._lock:
            self._check_monitor_locked()

    def _clear_auto_monitor_subscription(self) -> None:
        with self._lock:
            self._clear_monitor_locked()

    @property
    def auto_monitor(self) -> bool | int | None:
        """Whether (or with which DBE mask) the PV monitors itself; setting it applies it."""
        return self._auto_monitor

    @auto_monitor.setter
    def auto_monitor(self, value: bool | int | None) -> None:
        self._auto_monitor = value
        self._check_auto_monitor()

    @property
    def auto_monitor_mask(self) -> int | None:
        """The DBE mask of the running monitor, or None."""
        return self._monref_mask

    def clear_auto_monitor(self) -> None:
        """Stop the automatic monitor."""
        self.auto_monitor = False

    # -- connection ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while the channel is connected."""
        if self._detached:
            return False
        eng = self._chan()
        if not eng.connected:
            return False
        if not self._ready:
            self._setup_connected()
        return True

    def wait_for_connection(self, timeout: float | None = None) -> bool:
        """Wait up to *timeout* seconds (default: the PV's connection timeout); return connected."""
        eng = self._chan()
        if not eng.connected:
            try:
                eng.wait_for_connection(timeout=self.connection_timeout if timeout is None else timeout)
            except CAError:
                return False
        if not self._ready:
            if not self._setup_connected():
                return False
            self._refresh()  # (the monitor's first update, when it came already)
            if self._monref is not None and self._args["value"] is None:
                # Read once now, so that value, count and time stamp are known
                # when this returns (the monitor's first update may lag).
                with contextlib.suppress(CAError, ChannelAccessGetFailure, CASeverityException):
                    self._initial_read()
        return True

    def _initial_read(self) -> None:
        eng = self._eng
        resp = eng.read(data_type=self.ftype, data_count=self._user_max_count or None, timeout=self.connection_timeout)
        if self._args["value"] is None and resp.status == 1:
            self._apply(resp)
            self._applied = None  # (not a monitor update: keep no reference to it)

    def connect(self, timeout: float | None = None) -> bool:
        """Wait for the connection; True when connected and its type is known."""
        self.wait_for_connection(timeout=timeout)
        return self.connected and self.ftype is not None

    def reconnect(self) -> bool:
        """Restart the monitor and report the connection again; return connected."""
        self._clear_auto_monitor_subscription()
        self._ready = False
        self.force_connect()
        return self.wait_for_connection()

    def force_connect(self, pvname: str | None = None, chid: Any = None, conn: bool = True, **kws: Any) -> None:
        """Handle a connection event now, in this thread (runs the connection callbacks)."""
        if conn:
            self._setup_connected()
        for func in list(self.connection_callbacks):
            if callable(func):
                func(pvname=self.pvname, conn=conn, pv=self)

    def force_read_access_rights(self) -> None:
        """Read the access rights from the channel now."""
        rights = int(self._chan().access_rights) & 3
        self._args.update(read_access=bool(rights & 1), write_access=bool(rights & 2), access=_ACCESS_STRINGS[rights])

    def disconnect(self, deepclean: bool = True) -> None:
        """Forget callbacks and the monitor and drop the PV from ``get_pv``'s cache.

        The PV object stays usable: the next get/put attaches it again.
        """
        with RUNTIME.lock:
            for key, cached in list(RUNTIME.pv_cache.items()):
                if cached is self:
                    del RUNTIME.pv_cache[key]
        self._unbind()
        self.clear_callbacks(True, True)
        self._args = self._initial_args(self._args.get("monitor_delta"))
        self._args["chid"] = self.chid

    def poll(self, evt: float = 1.0e-4, iot: float = 1.0) -> None:
        """Give other threads a moment (pyepics' event pump; nothing to pump here)."""
        _poll(evt=evt, iot=iot)
