"""Fields served by the record IOC for the device tests (name -> initial value, see ``_record_ioc``)."""

from __future__ import annotations

from typing import Any

FIELDS: dict[str, Any] = {
    "notmotor.RTYP": "ai",
    "notmotor.VAL": 1.0,
}
