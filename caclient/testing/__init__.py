"""Test and launch helpers for caclient: loopback-only environments and IOCs.

Everything here keeps Channel Access on 127.0.0.1 (see
:mod:`caclient.testing.env`).  Importing this package needs only the standard
library; caproto and epicscorelibs are imported only inside the IOC child
processes.
"""

from caclient.testing.env import apply_loopback_env, free_port, free_port_pair, loopback_env
from caclient.testing.iocs import (
    TEST_ACF_PATH,
    TEST_DB_PATH,
    CaprotoIOC,
    EpicsIOC,
    IOCHandle,
    make_numbered_db,
    random_prefix,
)

__all__ = [
    "TEST_ACF_PATH",
    "TEST_DB_PATH",
    "CaprotoIOC",
    "EpicsIOC",
    "IOCHandle",
    "apply_loopback_env",
    "free_port",
    "free_port_pair",
    "loopback_env",
    "make_numbered_db",
    "random_prefix",
]
