"""Unit tests of Config.from_environ (caclient._config) with explicit mappings."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping

import pytest

from caclient import Config
from caclient._config import DEFAULT_REPEATER_PORT, DEFAULT_SERVER_PORT, parse_address_list

BCAST = "255.255.255.255"


class StrictEnv(Mapping[str, str]):
    """A mapping that records which keys were looked up."""

    def __init__(self, data: dict[str, str]) -> None:
        self._data = data
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self._data[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return self._data.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_defaults() -> None:
    cfg = Config.from_environ({})
    assert cfg == Config()
    assert cfg.addr_list == ()
    assert cfg.auto_addr_list is True
    assert cfg.server_port == DEFAULT_SERVER_PORT == 5064
    assert cfg.repeater_port == DEFAULT_REPEATER_PORT == 5065
    assert cfg.conn_tmo == 30.0
    assert cfg.beacon_period == 15.0
    assert cfg.max_array_bytes == 16384
    assert cfg.auto_array_bytes is True
    assert cfg.max_search_period == 300.0
    assert cfg.name_servers == ()
    assert cfg.search_addresses() == ((BCAST, 5064),)


def test_frozen() -> None:
    cfg = Config.from_environ({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.server_port = 1  # type: ignore[misc]


def test_does_not_read_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPICS_CA_ADDR_LIST", "10.9.9.9")
    monkeypatch.setenv("EPICS_CA_AUTO_ADDR_LIST", "NO")
    monkeypatch.setenv("EPICS_CA_SERVER_PORT", "7777")
    monkeypatch.setenv("EPICS_CA_MAX_ARRAY_BYTES", "1000000")
    cfg = Config.from_environ({})
    assert cfg == Config()

    class Boom(dict):  # type: ignore[type-arg]
        def get(self, *a: object, **k: object) -> object:
            raise AssertionError("os.environ was read")

        __getitem__ = get  # type: ignore[assignment]

    monkeypatch.setattr(os, "environ", Boom())
    env = StrictEnv({"EPICS_CA_SERVER_PORT": "6000"})
    assert Config.from_environ(env).server_port == 6000
    assert env.asked  # it read the mapping it was given
    assert all(k.startswith(("EPICS_CA_", "CACLIENT_")) for k in env.asked)


def test_reads_os_environ_when_no_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPICS_CA_ADDR_LIST", "10.9.9.9")
    monkeypatch.setenv("EPICS_CA_AUTO_ADDR_LIST", "NO")
    monkeypatch.setenv("EPICS_CA_SERVER_PORT", "7777")
    cfg = Config.from_environ()
    assert cfg.addr_list == (("10.9.9.9", 7777),)
    assert cfg.auto_addr_list is False


def test_addr_list_with_ports() -> None:
    cfg = Config.from_environ(
        {
            "EPICS_CA_ADDR_LIST": "  10.0.0.255 127.0.0.1:5070\tioc.example.org \n 10.0.0.255 127.0.0.1:5070 ",
            "EPICS_CA_SERVER_PORT": "6064",
        }
    )
    assert cfg.server_port == 6064
    assert cfg.addr_list == (("10.0.0.255", 6064), ("127.0.0.1", 5070), ("ioc.example.org", 6064))


def test_addr_list_default_port() -> None:
    cfg = Config.from_environ({"EPICS_CA_ADDR_LIST": "1.2.3.4 5.6.7.8:9"})
    assert cfg.addr_list == (("1.2.3.4", 5064), ("5.6.7.8", 9))


@pytest.mark.parametrize("entry", ["1.2.3.4:x", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:", ":5064"])
def test_addr_list_bad_entry_raises(entry: str) -> None:
    with pytest.raises(ValueError, match="address list entry"):
        Config.from_environ({"EPICS_CA_ADDR_LIST": f"10.0.0.1 {entry}"})


def test_parse_address_list() -> None:
    assert parse_address_list("", 5064) == ()
    assert parse_address_list("   ", 5064) == ()
    assert parse_address_list("a b:1 a:5064 b:1", 5064) == (("a", 5064), ("b", 1))
    assert parse_address_list("a:65535 b:1", 7) == (("a", 65535), ("b", 1))


def test_name_servers() -> None:
    cfg = Config.from_environ({"EPICS_CA_NAME_SERVERS": "10.1.1.1 10.1.1.2:5080", "EPICS_CA_SERVER_PORT": "5090"})
    assert cfg.name_servers == (("10.1.1.1", 5090), ("10.1.1.2", 5080))
    assert cfg.search_addresses() == ((BCAST, 5090),)  # name servers are TCP, not searched by UDP


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("NO", False),
        ("no", False),
        (" No ", False),
        ("YES", True),
        ("yes", True),
        ("", True),
        ("  ", True),
    ],
)
def test_auto_addr_list(value: str, expected: bool) -> None:
    cfg = Config.from_environ({"EPICS_CA_AUTO_ADDR_LIST": value, "EPICS_CA_ADDR_LIST": "10.0.0.7"})
    assert cfg.auto_addr_list is expected
    addrs = cfg.search_addresses()
    assert addrs[0] == ("10.0.0.7", 5064)
    assert ((BCAST, 5064) in addrs) is expected
    assert len(addrs) == (2 if expected else 1)


def test_search_addresses_no_duplicate_broadcast() -> None:
    cfg = Config.from_environ({"EPICS_CA_ADDR_LIST": "255.255.255.255 10.0.0.1"})
    assert cfg.search_addresses() == ((BCAST, 5064), ("10.0.0.1", 5064))
    cfg = Config.from_environ({"EPICS_CA_ADDR_LIST": "255.255.255.255:5070"})
    assert cfg.search_addresses() == ((BCAST, 5070), (BCAST, 5064))


def test_search_addresses_empty_when_auto_off_and_no_list() -> None:
    assert Config.from_environ({"EPICS_CA_AUTO_ADDR_LIST": "NO"}).search_addresses() == ()


def test_search_addresses_uses_server_port() -> None:
    cfg = Config.from_environ({"EPICS_CA_SERVER_PORT": "5999"})
    assert cfg.search_addresses() == ((BCAST, 5999),)


@pytest.mark.parametrize("key", ["EPICS_CA_SERVER_PORT", "EPICS_CA_REPEATER_PORT"])
@pytest.mark.parametrize("bad", ["abc", "0", "-5", "65536", "99999", "5064.5"])
def test_bad_port_raises(key: str, bad: str) -> None:
    with pytest.raises(ValueError, match=key):
        Config.from_environ({key: bad})


def test_ports() -> None:
    cfg = Config.from_environ({"EPICS_CA_SERVER_PORT": " 5100 ", "EPICS_CA_REPEATER_PORT": "5101"})
    assert (cfg.server_port, cfg.repeater_port) == (5100, 5101)
    assert isinstance(cfg.server_port, int) and isinstance(cfg.repeater_port, int)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10", 60.0), ("59.9", 60.0), ("60", 60.0), ("61.5", 61.5), ("1000", 1000.0), ("", 300.0)],
)
def test_max_search_period_minimum(value: str, expected: float) -> None:
    assert Config.from_environ({"EPICS_CA_MAX_SEARCH_PERIOD": value}).max_search_period == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 16384), ("100", 16384), ("16383", 16384), ("16384", 16384), ("100000000", 100_000_000), ("", 16384)],
)
def test_max_array_bytes_minimum(value: str, expected: int) -> None:
    cfg = Config.from_environ({"EPICS_CA_MAX_ARRAY_BYTES": value})
    assert cfg.max_array_bytes == expected
    assert isinstance(cfg.max_array_bytes, int)


def test_timeouts_and_periods() -> None:
    cfg = Config.from_environ({"EPICS_CA_CONN_TMO": "2.5", "EPICS_CA_BEACON_PERIOD": "0"})
    assert cfg.conn_tmo == 2.5
    assert cfg.beacon_period == 0.1  # minimum


def test_auto_array_bytes() -> None:
    assert Config.from_environ({"EPICS_CA_AUTO_ARRAY_BYTES": "NO"}).auto_array_bytes is False
    assert Config.from_environ({"EPICS_CA_AUTO_ARRAY_BYTES": "YES"}).auto_array_bytes is True


@pytest.mark.parametrize("key", ["EPICS_CA_CONN_TMO", "EPICS_CA_MAX_ARRAY_BYTES", "EPICS_CA_MAX_SEARCH_PERIOD"])
def test_non_numeric_raises(key: str) -> None:
    with pytest.raises(ValueError, match=key):
        Config.from_environ({key: "lots"})
