"""Record-type devices (``epics.devices``): :class:`ai`, :class:`ao`, :class:`bi`, :class:`bo`."""

from ._records import ai, ao, bi, bo

__all__ = ["ai", "ao", "bi", "bo"]
