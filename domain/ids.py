"""The id grammar: what a site, building, room, asset id or a fault code may look like.

Ids become parts of DynamoDB keys (``ASSET#<asset>``, ``BLDG#<site>#<building>``, ...),
Timestream dimensions and dead-letter keys, so the grammar is the AWS IoT thing-name alphabet:

    id = 1*128( ALPHA / DIGIT / ":" / "_" / "-" )        (ASCII only)

No ``#`` (the key separator: ``a#b`` + ``c`` and ``a`` + ``b#c`` would share a key), no
whitespace, control characters, NUL or non-ASCII letters, and at most 128 characters, so
every key built from a few ids stays far below DynamoDB's 2,048-byte partition key and
Timestream's 2 KB dimension value.
"""

from __future__ import annotations

import re
from typing import Final

MAX_ID_CHARS: Final = 128
ID_PATTERN: Final = r"[A-Za-z0-9:_-]{1,128}"
_ID_RE: Final = re.compile(ID_PATTERN)


def is_valid_id(value: object) -> bool:
    """True when `value` is a `str` that follows the id grammar (see the module docstring)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None
