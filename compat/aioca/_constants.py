"""The numeric constants of aioca 2.1's interface (DBR, DBE, FORMAT, ECA, channel states).

aioca takes them from ``epicscorelibs.ca``, which loads libca; compat.aioca
defines the same numbers here so that importing it never loads libca.
Stateless.
"""

from __future__ import annotations

# -- event masks for camonitor -----------------------------------------------------------------
DBE_VALUE = 1
DBE_LOG = 2
DBE_ALARM = 4
DBE_PROPERTY = 8

# -- plain DBR types ---------------------------------------------------------------------------
DBR_STRING = 0
DBR_SHORT = 1
DBR_FLOAT = 2
DBR_ENUM = 3
DBR_CHAR = 4
DBR_LONG = 5
DBR_DOUBLE = 6

#: Bytes in a DBR_STRING element, its terminating NUL included.
MAX_STRING_SIZE = 40

#: Offsets from a plain type to its TIME and CTRL forms.
TIME_OFFSET = 14
CTRL_OFFSET = 28
DBR_TIME_STRING = DBR_STRING + TIME_OFFSET

# -- special requests --------------------------------------------------------------------------
DBR_PUT_ACKT = 35
DBR_PUT_ACKS = 36
DBR_STSACK_STRING = 37
DBR_CLASS_NAME = 38

#: Read an enum as its state string, any other channel as its native type.
DBR_ENUM_STR = 996
#: Read or write a CHAR array as ``bytes`` (up to the first NUL).
DBR_CHAR_BYTES = 997
#: Read or write a CHAR array as ``str`` decoded strictly as UTF-8.
DBR_CHAR_UNICODE = 998
#: Read or write a CHAR array as ``str`` (UTF-8, undecodable bytes replaced).
DBR_CHAR_STR = 999

BASIC_DBR_TYPES = frozenset((DBR_STRING, DBR_SHORT, DBR_FLOAT, DBR_ENUM, DBR_CHAR, DBR_LONG, DBR_DOUBLE))
CHAR_AS_TEXT = frozenset((DBR_CHAR_STR, DBR_CHAR_BYTES, DBR_CHAR_UNICODE))

# -- formats -----------------------------------------------------------------------------------
FORMAT_RAW = 0
FORMAT_TIME = 1
FORMAT_CTRL = 2

#: The default camonitor event mask for each format.
DEFAULT_EVENTS = {
    FORMAT_RAW: DBE_VALUE,
    FORMAT_TIME: DBE_VALUE | DBE_ALARM,
    FORMAT_CTRL: DBE_VALUE | DBE_ALARM | DBE_PROPERTY,
}

#: The limit attributes of a FORMAT_CTRL value, in aioca's order.
LIMIT_FIELDS = (
    "upper_disp_limit",
    "lower_disp_limit",
    "upper_alarm_limit",
    "lower_alarm_limit",
    "upper_warning_limit",
    "lower_warning_limit",
    "upper_ctrl_limit",
    "lower_ctrl_limit",
)

#: Every attribute name an augmented value may carry.
ca_extra_fields = [
    "name",
    "ok",
    "datatype",
    "element_count",
    "severity",
    "status",
    "raw_stamp",
    "timestamp",
    "datetime",
    "units",
    *LIMIT_FIELDS,
    "precision",
    "enums",
]

# -- ECA status codes used by the facade ---------------------------------------------------------
ECA_NORMAL = 1
ECA_TIMEOUT = 80
ECA_BADTYPE = 114
ECA_GETFAIL = 152
ECA_PUTFAIL = 160
ECA_BADCOUNT = 176
ECA_BADSTR = 186
ECA_DISCONN = 192
ECA_NORDACCESS = 368
ECA_NOWTACCESS = 376

# -- channel states (CAInfo.state) -----------------------------------------------------------------
CS_NEVER_CONN = 0
CS_PREV_CONN = 1
CS_CONN = 2
CS_CLOSED = 3

#: DBF_NO_ACCESS: the datatype CAInfo reports for an unconnected channel.
DBF_NO_ACCESS = 7
