"""Engine configuration, parsed from ``EPICS_CA_*`` variables.

A :class:`Config` is built when a :class:`~caclient.Context` is created (never
at import), from ``os.environ`` or from a mapping the caller passes.  It is
frozen: a running Context never sees the environment change under it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

Address = tuple[str, int]

DEFAULT_SERVER_PORT = 5064
DEFAULT_REPEATER_PORT = 5065


def _flag(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().upper() in ("YES", "Y", "TRUE", "1", "ON")


def _number(env: Mapping[str, str], key: str, default: float, minimum: float | None = None) -> float:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        value = minimum
    return value


def _port(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ValueError(f"{key}={raw!r} is out of the port range 1..65535")
    return port


def parse_address_list(text: str, default_port: int) -> tuple[Address, ...]:
    """Parse a whitespace-separated ``host[:port]`` list as libca does.

    Parameters
    ----------
    text : str
        The list, e.g. ``"10.0.0.255 127.0.0.1:5070"``.
    default_port : int
        The port given to entries that name none.

    Returns
    -------
    tuple of (str, int)
        The entries in order, duplicates removed.

    Raises
    ------
    ValueError
        If an entry has a port that is not a number in 1..65535.
    """
    out: list[Address] = []
    for entry in text.split():
        host, sep, port_text = entry.rpartition(":")
        if not sep:
            host, port = entry, default_port
        else:
            try:
                port = int(port_text)
            except ValueError:
                raise ValueError(f"bad port in address list entry {entry!r}") from None
            if not 0 < port < 65536:
                raise ValueError(f"port out of range in address list entry {entry!r}")
        if not host:
            raise ValueError(f"empty host in address list entry {entry!r}")
        if (host, port) not in out:
            out.append((host, port))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Config:
    """Client settings (one per Context).

    Attributes mirror libca's environment variables; see the user guide for the
    full list and their defaults.  Two are caclient's own:
    ``echo_timeout`` (``CACLIENT_ECHO_TIMEOUT``, default 5 s: how long an
    unanswered heartbeat may wait before the circuit counts as unresponsive)
    and ``spawn_repeater`` (false when ``CACLIENT_NO_REPEATER`` is set).
    """

    addr_list: tuple[Address, ...] = ()
    auto_addr_list: bool = True
    server_port: int = DEFAULT_SERVER_PORT
    repeater_port: int = DEFAULT_REPEATER_PORT
    conn_tmo: float = 30.0
    beacon_period: float = 15.0
    max_array_bytes: int = 16384
    auto_array_bytes: bool = True
    max_search_period: float = 300.0
    name_servers: tuple[Address, ...] = ()
    echo_timeout: float = 5.0
    spawn_repeater: bool = True

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read ``EPICS_CA_*`` from *env* (default ``os.environ``)."""
        if env is None:
            env = os.environ
        server_port = _port(env, "EPICS_CA_SERVER_PORT", DEFAULT_SERVER_PORT)
        return cls(
            addr_list=parse_address_list(env.get("EPICS_CA_ADDR_LIST", ""), server_port),
            auto_addr_list=_flag(env.get("EPICS_CA_AUTO_ADDR_LIST"), True),
            server_port=server_port,
            repeater_port=_port(env, "EPICS_CA_REPEATER_PORT", DEFAULT_REPEATER_PORT),
            conn_tmo=_number(env, "EPICS_CA_CONN_TMO", 30.0, minimum=0.1),
            beacon_period=_number(env, "EPICS_CA_BEACON_PERIOD", 15.0, minimum=0.1),
            max_array_bytes=int(_number(env, "EPICS_CA_MAX_ARRAY_BYTES", 16384, minimum=16384)),
            auto_array_bytes=_flag(env.get("EPICS_CA_AUTO_ARRAY_BYTES"), True),
            max_search_period=_number(env, "EPICS_CA_MAX_SEARCH_PERIOD", 300.0, minimum=60.0),
            name_servers=parse_address_list(env.get("EPICS_CA_NAME_SERVERS", ""), server_port),
            echo_timeout=_number(env, "CACLIENT_ECHO_TIMEOUT", 5.0, minimum=0.05),
            spawn_repeater=not _flag(env.get("CACLIENT_NO_REPEATER"), False),
        )

    def search_addresses(self) -> tuple[Address, ...]:
        """Where UDP searches go: the address list, plus broadcast when auto is on."""
        addrs = list(self.addr_list)
        if self.auto_addr_list:
            bcast = ("255.255.255.255", self.server_port)
            if bcast not in addrs:
                addrs.append(bcast)
        return tuple(addrs)
