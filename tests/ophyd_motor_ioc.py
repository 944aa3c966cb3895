"""caproto's fake motor record IOC (three motors ``{prefix}mtr1..3``), served the test helpers' way.

Run by :class:`caclient.testing.CaprotoIOC` as ``python -m tests.ophyd_motor_ioc
--prefix P --interfaces 127.0.0.1``: it serves
:class:`caproto.ioc_examples.fake_motor_record.FakeMotorIOC` on loopback
with the ready line the launcher waits for.  ``mtr1`` moves at 1 unit/s
within 0..10, ``mtr2`` at 2 units/s within -10..20, ``mtr3`` at 3 units/s
within 0..30.
"""

from __future__ import annotations

import argparse

from caproto.ioc_examples.fake_motor_record import FakeMotorIOC

from caclient.testing._caproto_ioc import serve


def main() -> None:
    """Serve the three fake motors under ``--prefix``."""
    parser = argparse.ArgumentParser(prog="python -m tests.ophyd_motor_ioc")
    parser.add_argument("--prefix", default="sim:")
    parser.add_argument("--interfaces", nargs="+", default=["127.0.0.1"])
    args = parser.parse_args()
    serve(FakeMotorIOC(prefix=args.prefix).pvdb, args.interfaces)


if __name__ == "__main__":
    main()
