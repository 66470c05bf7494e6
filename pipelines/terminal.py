"""What the CLI prints to a terminal, made safe: the one place control characters are escaped.

Keys, camera and case names, record fields and error messages come from the store, from a
recording server or from planted records. Printed raw, an ANSI escape in a key can move the
cursor and repaint an audit's findings as "OK", a carriage return can overwrite a line, and
a newline or a bidi override can forge a line of its own. `safe()` shows every control and
format character as a visible escape (`\\x1b`, `\\n`, `\\u202e`); `say()` prints lines through
it, one per element, so only the lines the CLI itself makes are lines. JSON output needs no
help: `json.dumps` escapes these characters already.
"""

from __future__ import annotations

import logging
import sys
import unicodedata
from typing import TextIO

# Cc: C0, DEL, C1 (ESC, CSI ...); Cf: bidi overrides, zero-width characters; Zl/Zp: line and
# paragraph separators; Cs: lone surrogates (undecodable bytes read with surrogateescape).
_UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def _escape(char: str) -> str:
    code = ord(char)
    if char in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def safe(value: object) -> str:
    """`str(value)` with every control and format character escaped (printable text untouched)."""
    text = str(value)
    if text.isascii() and text.isprintable():  # the common case, without a per-character look
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _UNSAFE else c for c in text)


def say(*lines: object, file: TextIO | None = None, flush: bool = False) -> None:
    """Print each of `lines` made safe, one per line."""
    print("\n".join(safe(line) for line in lines), file=file or sys.stdout, flush=flush)


class SafeFormatter(logging.Formatter):
    """Log lines on a terminal get the same treatment (their message names keys too)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return safe(super().formatMessage(record))
