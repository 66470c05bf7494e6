"""Safe local file names from what a server says (Content-Disposition), and nothing else.

A server-sent name is never trusted as a path: directory parts, `..`, control and shell
characters are removed, so a hostile or broken server cannot write outside the folder
the user chose.
"""

from __future__ import annotations

import re
from email.message import Message

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_NAME = 200


def safe_filename(name: str, fallback: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # drop any directory part
    name = _UNSAFE.sub("_", name).strip(" .")
    name = re.sub(r"\.{2,}", ".", name)
    return name[:MAX_NAME] or fallback


def filename_from_disposition(header: str | None, fallback: str) -> str:
    if not header:
        return fallback
    message = Message()
    message["content-disposition"] = header
    raw = message.get_filename()
    return safe_filename(raw, fallback) if raw else fallback
