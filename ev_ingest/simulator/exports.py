"""Export files built from the video library by copying bytes and patching timestamps.

An `ExportLayout` is the list of recorded GOP slots of one camera and interval. Its
bytes are produced lazily, chunk by chunk, so the simulator can serve a day-long
export with a known Content-Length without holding it in memory:

- `mp4`: the camera's fMP4 init segment, then one fragment per GOP with its decode
  time (`tfdt`) set to the slot's offset from the export start and its sequence number
  set to its position. Gaps in motion-triggered recordings stay gaps in time.
- `ps_zip`: a zip (stored, with data descriptors) holding one MPEG program stream per
  contiguous recorded clip, named `<camera>_<UTC start>.ps`, timestamps from 0 at the
  clip start, as exacqVision keeps video on disk.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from ev_ingest.simulator import scene
from ev_ingest.simulator.library import PS_CLOCK, CameraLibrary

FORMATS = {"mp4": "MP4 video (H.264)", "ps_zip": "Zip of MPEG program streams (native)"}
EXTENSIONS = {"mp4": "mp4", "ps_zip": "zip"}
PS_END_CODE = b"\x00\x00\x01\xb9"


@dataclass(frozen=True)
class ExportLayout:
    library: CameraLibrary
    plays: tuple[scene.SlotPlay, ...]
    start: datetime  # start of the first exported GOP slot (exports snap out to GOPs)
    format: str

    @property
    def clips(self) -> list[list[scene.SlotPlay]]:
        runs: list[list[scene.SlotPlay]] = []
        for play in self.plays:
            if runs and runs[-1][-1].slot + 1 == play.slot:
                runs[-1].append(play)
            else:
                runs.append([play])
        return runs

    def size(self) -> int:
        if self.format == "mp4":
            return len(self.library.mp4_init) + sum(len(self.library.gops[p.variant].fragment) for p in self.plays)
        total = 0
        for name, clip in self._zip_members():
            data = sum(len(self.library.gops[p.variant].ps) for p in clip) + len(PS_END_CODE)
            total += 30 + len(name) + data + 16 + 46 + len(name)
        return total + 22

    def chunks(self) -> Iterator[bytes]:
        return self._mp4_chunks() if self.format == "mp4" else self._zip_chunks()

    # --- mp4 ----------------------------------------------------------------------
    def _mp4_chunks(self) -> Iterator[bytes]:
        lib = self.library
        yield lib.mp4_init
        first = scene.slot_of(self.start)
        step = lib.timescale * scene.GOP_SECONDS
        for sequence, play in enumerate(self.plays, start=1):
            gop = lib.gops[play.variant]
            fragment = bytearray(gop.fragment)
            struct.pack_into(">Q", fragment, gop.tfdt_offset, (play.slot - first) * step)
            struct.pack_into(">I", fragment, gop.mfhd_offset, sequence)
            yield bytes(fragment)

    # --- ps_zip -------------------------------------------------------------------
    def _zip_members(self) -> list[tuple[bytes, list[scene.SlotPlay]]]:
        cam = self.library.camera.id
        return [
            (f"{cam}_{scene.slot_start(clip[0].slot).strftime('%Y%m%dT%H%M%SZ')}.ps".encode(), clip)
            for clip in self.clips
        ]

    def _ps_clip(self, clip: list[scene.SlotPlay]) -> Iterator[bytes]:
        step = PS_CLOCK * scene.GOP_SECONDS
        for index, play in enumerate(clip):
            gop = self.library.gops[play.variant]
            yield shift_program_stream(gop.ps, gop.ps_fields, index * step)
        yield PS_END_CODE

    def _zip_chunks(self) -> Iterator[bytes]:
        offset = 0
        central = []
        for name, clip in self._zip_members():
            dos_time, dos_date = _dos_datetime(scene.slot_start(clip[0].slot))
            # Flag 0x08: sizes and CRC follow the data (a data descriptor), so we can stream.
            header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x08, 0, dos_time, dos_date, 0, 0, 0, len(name), 0)
            yield header + name
            crc, size = 0, 0
            for chunk in self._ps_clip(clip):
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                yield chunk
            yield struct.pack("<IIII", 0x08074B50, crc, size, size)
            central.append(
                struct.pack(
                    "<IHHHHHHIIIHHHHHII",
                    0x02014B50,
                    20,
                    20,
                    0x08,
                    0,
                    dos_time,
                    dos_date,
                    crc,
                    size,
                    size,
                    len(name),
                    0,
                    0,
                    0,
                    0,
                    0,
                    offset,
                )
                + name
            )
            offset += len(header) + len(name) + size + 16
        directory = b"".join(central)
        yield directory + struct.pack(
            "<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), len(directory), offset, 0
        )


def _dos_datetime(moment: datetime) -> tuple[int, int]:
    return (
        (moment.hour << 11) | (moment.minute << 5) | (moment.second // 2),
        ((moment.year - 1980) << 9) | (moment.month << 5) | moment.day,
    )


def _read_ts(data: bytes | bytearray, pos: int, kind: str) -> int:
    b = data[pos : pos + 5]
    value = ((b[0] >> 3) & 0x07) << 30 if kind == "scr" else ((b[0] >> 1) & 0x07) << 30
    if kind == "scr":
        value |= (b[0] & 0x03) << 28 | b[1] << 20 | (b[2] >> 3) << 15 | (b[2] & 0x03) << 13 | b[3] << 5 | b[4] >> 3
    else:
        value |= b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
    return value


def _write_ts(data: bytearray, pos: int, kind: str, value: int) -> None:
    value &= (1 << 33) - 1
    if kind == "scr":
        # '01' SCR[32..30] 1 SCR[29..15] 1 SCR[14..0] 1 ext(9) 1; keep the 2 prefix bits and the extension.
        ext_hi = data[pos + 4] & 0x03
        data[pos] = 0x40 | ((value >> 30) & 0x07) << 3 | 0x04 | ((value >> 28) & 0x03)
        data[pos + 1] = (value >> 20) & 0xFF
        data[pos + 2] = ((value >> 15) & 0x1F) << 3 | 0x04 | ((value >> 13) & 0x03)
        data[pos + 3] = (value >> 5) & 0xFF
        data[pos + 4] = (value & 0x1F) << 3 | 0x04 | ext_hi
    else:
        prefix = data[pos] & 0xF0
        data[pos] = prefix | ((value >> 30) & 0x07) << 1 | 0x01
        data[pos + 1] = (value >> 22) & 0xFF
        data[pos + 2] = ((value >> 15) & 0x7F) << 1 | 0x01
        data[pos + 3] = (value >> 7) & 0xFF
        data[pos + 4] = (value & 0x7F) << 1 | 0x01


def shift_program_stream(chunk: bytes, fields: list[tuple[int, str]], offset: int) -> bytes:
    """The program-stream chunk with every SCR, PTS and DTS moved by `offset` ticks of 90 kHz."""
    if not offset:
        return chunk
    data = bytearray(chunk)
    for pos, kind in fields:
        _write_ts(data, pos, kind, _read_ts(data, pos, kind) + offset)
    return bytes(data)
