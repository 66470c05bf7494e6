"""The native stream's parser: `video.web?multipart_encode=1` answers, fed chunk by chunk,
into `NativeFrame`s, each part's headers and body bounded."""

from __future__ import annotations

from ev_ingest.client._config import (
    MAX_PART_BYTES,
)
from ev_ingest.client._exceptions import (
    ProtocolError,
)
from ev_ingest.client.models import NativeFrame


class MultipartFrames:
    """Incremental parser of `video.web?multipart_encode=1` answers into NativeFrames."""

    def __init__(self, content_type: str) -> None:
        boundary = content_type.partition("boundary=")[2].strip().strip('"')
        if not boundary:
            raise ProtocolError(f"native stream without a multipart boundary ({content_type!r})")
        self.marker = b"--" + boundary.encode()
        self.buffer = bytearray()

    HEAD_LIMIT = 16 << 10  # a part's headers are a few lines

    def feed(self, chunk: bytes) -> list[NativeFrame]:
        self.buffer += chunk
        frames = []
        while True:
            start = self.buffer.find(self.marker)
            if start < 0:
                if len(self.buffer) > MAX_PART_BYTES + self.HEAD_LIMIT:
                    raise ProtocolError("the native stream sent over 32 MiB without a part boundary: refused")
                return frames
            head_end = self.buffer.find(b"\r\n\r\n", start)
            if head_end < 0:
                if len(self.buffer) - start > self.HEAD_LIMIT:
                    raise ProtocolError("a native stream part's headers ran past 16 kB: refused")
                return frames
            headers = {}
            for line in bytes(self.buffer[start + len(self.marker) : head_end]).decode("latin-1").split("\r\n"):
                key, sep, value = line.partition(":")
                if sep:
                    headers[key.strip().lower()] = value.strip()
            try:
                length = int(headers["datalen"])
            except (KeyError, ValueError):
                raise ProtocolError("native stream part without a DataLen header") from None
            if not 0 <= length <= MAX_PART_BYTES:
                raise ProtocolError(
                    f"native stream part of {length} bytes (DataLen), over the {MAX_PART_BYTES >> 20} MiB a frame may "
                    "have: refused"
                )
            body_start = head_end + 4
            if len(self.buffer) < body_start + length:
                return frames
            data = bytes(self.buffer[body_start : body_start + length])
            del self.buffer[: body_start + length]
            frames.append(
                NativeFrame(
                    content_type=headers.get("content-type", "application/octet-stream"),
                    data=data,
                    iframe=headers.get("iframe", "0") not in ("0", "false", ""),
                    frame=int(headers["frame"]) if headers.get("frame", "").isdigit() else None,
                    time_offset_ms=int(headers["timeoffset"]) if headers.get("timeoffset", "").isdigit() else None,
                )
            )
