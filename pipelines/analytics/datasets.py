"""Data scientists' access to the archive: motion timelines, events, exports and manifests as
pandas data frames, reading only the partitions asked for.

The archive is S3 (an `ArchiveStore`'s bucket) or a local folder with the same layout.
With cameras and a date range the exact Hive partitions (`.../camera=C/date=D/`) are
opened, so loading one camera-day of a 30-day, 16-camera archive opens that day's files
only; without cameras the site's partitions are listed and pruned by date.

    from pipelines.analytics.datasets import Archive
    archive = Archive.from_env()                     # or Archive.local("/data/ev-archive")
    events = archive.motion_events("HQ", start=datetime(2026, 11, 20, 14, tzinfo=UTC),
                                   end=datetime(2026, 11, 20, 18, tzinfo=UTC), tz="America/New_York")
    events.groupby("camera_name").duration_s.sum().idxmax()     # the busiest camera
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from ev_ingest.store import ArchiveStore, ManifestEntry, StoreSettings
from ev_ingest.store import keys as store_keys
from ev_ingest.store.signing import decode
from pipelines.video.motion_config import MotionConfig
from pipelines.video.summary import EVENTS_SCHEMA, TIMELINE_SCHEMA

log = logging.getLogger(__name__)


@dataclass
class Archive:
    filesystem: pafs.FileSystem
    base: str  # bucket name (S3) or folder path (local), no trailing slash
    store: ArchiveStore | None = None  # for byte-level reads (exports, manifests) on S3
    _scratch: tuple[tuple[str, str | None], IO[bytes]] | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_store(cls, store: ArchiveStore) -> Archive:
        settings = store.settings
        endpoint = settings.endpoint_url or None
        scheme = "http" if endpoint and endpoint.startswith("http://") else "https"
        filesystem = pafs.S3FileSystem(
            access_key=settings.access_key,
            secret_key=settings.secret_key.get_secret_value() if settings.secret_key else None,
            region=settings.region,
            endpoint_override=endpoint.split("://", 1)[1] if endpoint else None,
            scheme=scheme,
            force_virtual_addressing=not settings.path_style,
        )
        return cls(filesystem, settings.bucket, store)

    @classmethod
    def from_env(cls, **overrides: Any) -> Archive:
        return cls.from_store(ArchiveStore(StoreSettings.from_env(**overrides)))

    @classmethod
    def local(cls, folder: str | Path) -> Archive:
        return cls(pafs.LocalFileSystem(), str(Path(folder).resolve()))

    # --- motion -------------------------------------------------------------------------
    def _camera_folders(self, root: str) -> list[tuple[str, int, str]]:
        """(server, camera id, folder) of every camera partition under a site folder: the
        `server=V/camera=C` layout, and the `camera=C` one of archives written before the
        server was part of the identity (server "")."""

        def folders(path: str) -> list[str]:
            found = self.filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
            return [f.path for f in found if f.type == pafs.FileType.Directory]

        out = []
        for folder in folders(root):
            name = folder.rsplit("/", 1)[1]
            if name.startswith("server="):
                server = name.split("=", 1)[1]
                out += [(server, int(c.rsplit("=", 1)[1]), c) for c in folders(folder) if "/camera=" in c]
            elif name.startswith("camera="):
                out.append(("", int(name.split("=", 1)[1]), folder))
        return out

    def _partitions(
        self,
        kind: str,
        site: str,
        cameras: list[int] | None,
        servers: list[str] | None,
        start: datetime | None,
        days: int,
    ) -> list[tuple[str, str]]:
        """(server, file) of the Parquet parts asked for: directories are listed, only the
        wanted camera-days' files are opened."""
        root = f"{self.base}/motion/{kind}/site={store_keys.safe_part(site)}"
        dates = [store_keys.day(start + timedelta(days=i)) for i in range(days)] if start else None
        files = []
        for server, camera, folder in self._camera_folders(root):
            if (cameras is not None and camera not in cameras) or (servers is not None and server not in servers):
                continue
            if dates is not None:
                wanted = [f"{folder}/date={d}" for d in dates]
            else:
                listing = self.filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
                wanted = [f.path for f in listing if f.type == pafs.FileType.Directory]
            for day_folder in wanted:
                listing = self.filesystem.get_file_info(pafs.FileSelector(day_folder, allow_not_found=True))
                files += sorted((server, f.path) for f in listing if f.path.endswith(".parquet"))
        return files

    def _read(
        self,
        kind: str,
        schema: pa.Schema,
        site: str,
        cameras: list[int] | None,
        servers: list[str] | None,
        start: datetime | None,
        end: datetime | None,
        days: int,
        tz: str | None,
        keep: Callable[[pd.DataFrame, pd.Timestamp, pd.Timestamp], pd.Series] | None = None,
    ) -> pd.DataFrame:
        """Rows of [start, end) (exact moments), from the UTC day partitions they span;
        `keep(frame, start, end)`: which rows, where "starts in [start, end)" is not it."""
        first_day = _day_start(start)
        if first_day is not None and end is None:
            end = first_day + timedelta(days=days)
        if start is not None and first_day is not None and end is not None:
            end = _utc(end)
            if end <= _utc(start):
                raise ValueError(f"end {end.isoformat()} is not after start {_utc(start).isoformat()}")
            days = (_utc(end - timedelta(microseconds=1)).date() - first_day.date()).days + 1
        files = self._partitions(kind, site, cameras, servers, first_day, days)
        self.files_opened = len(files)
        column = "ts" if kind == "timeline" else "start"
        if not files:
            frame = schema.empty_table().to_pandas()
            frame.insert(0, "server", pd.Series(dtype=str))
            return self._finish(site, frame, tz)
        tables = []
        for server in dict.fromkeys(s for s, _ in files):  # one dataset per server, in order
            paths = [f for s, f in files if s == server]
            table = ds.dataset(paths, schema=schema, format="parquet", filesystem=self.filesystem).to_table()
            tables.append(table.add_column(0, "server", pa.array([server] * table.num_rows, pa.string())))
        frame = pa.concat_tables(tables).to_pandas()
        frame = frame.sort_values(["server", "camera_id", column]).reset_index(drop=True)
        if start is not None and end is not None:
            lo, hi = pd.Timestamp(_utc(start)), pd.Timestamp(end)
            frame = frame[keep(frame, lo, hi) if keep else (frame[column] >= lo) & (frame[column] < hi)]
        return self._finish(site, frame.reset_index(drop=True), tz)

    def _finish(self, site: str, frame: pd.DataFrame, tz: str | None) -> pd.DataFrame:
        """Camera names beside the ids; times in `tz` when asked."""
        frame.insert(2, "camera_name", self._camera_names(site, frame))
        if tz:
            for name in ("ts", "start", "end"):
                if name in frame:
                    frame[name] = frame[name].dt.tz_convert(tz)
        return frame

    def _camera_names(self, site: str, frame: pd.DataFrame) -> pd.Series:
        """Each row's camera name, from the export entries of the site's manifests."""
        if frame.empty:
            return pd.Series([], dtype=str)
        names: dict[tuple[str, int], str] = {}
        for manifest in self.manifests(site):
            for entry in manifest.get("entries", []):
                if entry.get("kind") == "export" and entry.get("camera_name"):
                    names[(entry.get("server") or "", int(entry["camera_id"]))] = entry["camera_name"]
        pairs = zip(frame["server"], frame["camera_id"], strict=True)
        return pd.Series([names.get((srv, int(cam)), "") for srv, cam in pairs], index=frame.index, dtype=str)

    def motion_timeline(
        self,
        site: str,
        *,
        cameras: list[int] | None = None,
        servers: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        days: int = 1,
        tz: str | None = None,
    ) -> pd.DataFrame:
        """Per-second activity: server, camera_id, camera_name, ts, frames, score, peak, source.

        `start`/`end`: exact moments (a time without a zone is UTC); without `end`, `days`
        whole UTC days from `start`'s day. `tz` (e.g. "America/New_York", the site's zone)
        converts the times; they are UTC otherwise. Camera ids are per server: filter with
        `servers` too where two servers share ids."""
        return self._read("timeline", TIMELINE_SCHEMA, site, cameras, servers, start, end, days, tz)

    def motion_events(
        self,
        site: str,
        *,
        cameras: list[int] | None = None,
        servers: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        days: int = 1,
        tz: str | None = None,
    ) -> pd.DataFrame:
        """Motion events that start in [start, end): server, camera_id, camera_name, start,
        end, peak, mean, frames, bbox, source, duration_s, parts (times as in `motion_timeline`).

        A camera-day is one stream: an event that crosses the boundary between two exported
        chunks (summarised apart, each its own Parquet part) is one event here (`stitch`;
        `parts` says how many chunks it spans), whole even where it crosses the edge of what
        was asked: it belongs to the window it starts in, with its whole end, so reading day
        after day counts it once. Its parts are found a day either side of the window (the
        neighbouring days' partitions are opened only when a part touches their midnight).

            events.groupby("camera_name").duration_s.sum().idxmax()   # the busiest camera
        """
        args = (site, cameras, servers)
        if start is None:
            return _with_duration(stitch(self._read("events", EVENTS_SCHEMA, *args, start, end, days, tz)))
        first = _day_start(start)
        begin = pd.Timestamp(_utc(start))
        finish = pd.Timestamp(_utc(end)) if end is not None else pd.Timestamp(first + timedelta(days=days))
        gap = pd.Timedelta(seconds=MotionConfig().merge_gap + 1e-3)
        # The parts that overlap the window, and those that meet them at its edges.
        frame = self._read("events", EVENTS_SCHEMA, *args, begin, finish, days, tz, keep=_touching(gap))
        opened = self.files_opened
        midnight = pd.Timestamp(first)
        last = pd.Timestamp(_day_start(finish - pd.Timedelta(microseconds=1)) + timedelta(days=1))
        pieces = [frame]

        def day_from(day: pd.Timestamp, keep: Callable[[pd.DataFrame, pd.Timestamp, pd.Timestamp], pd.Series]) -> int:
            pieces.append(self._read("events", EVENTS_SCHEMA, *args, day, day + timedelta(days=1), 1, tz, keep=keep))
            return self.files_opened

        if not frame.empty and bool((frame["start"] - midnight <= gap).any()):  # may go on from the day before
            opened += day_from(midnight - timedelta(days=1), lambda f, lo, hi: f["end"] >= hi - gap)
        if not frame.empty and bool((last - frame["end"] <= gap).any()):  # may go on into the next day
            opened += day_from(last, lambda f, lo, hi: f["start"] < lo + gap)
        self.files_opened = opened
        joined = stitch(pd.concat([p for p in pieces if not p.empty] or [frame], ignore_index=True))
        joined = joined[(joined["start"] >= begin) & (joined["start"] < finish)]
        return _with_duration(joined.reset_index(drop=True))

    # --- manifests and exports ------------------------------------------------------------
    def _bytes(self, key: str) -> bytes:
        with self.filesystem.open_input_stream(f"{self.base}/{key}") as stream:
            return stream.read()

    def manifests(self, site: str) -> list[dict[str, Any]]:
        root = f"{self.base}/manifests/site={store_keys.safe_part(site)}"
        found = self.filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True, recursive=True))
        keys = sorted(f.path[len(self.base) + 1 :] for f in found if f.path.endswith(".json"))
        found = []
        for key in keys:
            document = decode(json.loads(self._bytes(key)))  # the record inside its envelope
            if document is None:
                log.warning("%s is not a manifest record: skipped", key)
                continue
            found.append(document | {"key": key})
        return found

    def exports(self, site: str) -> pd.DataFrame:
        """Every archived export of the site, from its manifests (one row per object; `server`
        is "" in entries written before the server was part of the identity)."""
        rows = [
            ManifestEntry.model_validate(entry).model_dump(mode="json") | {"manifest": m["key"]}
            for m in self.manifests(site)
            for entry in m["entries"]
            if entry["kind"] == "export"
        ]
        frame = pd.DataFrame(rows)
        for column in ("start", "end", "recorded_start"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def event_frame(self, event: Any, *, width: int = 320, client: Any = None, box: bool = True) -> bytes:
        """A JPEG of the middle of an event: decoded from the archived export, or from the
        exacqVision server when a client is given (its single recorded frame); with `box`,
        the event's moving region (its `bbox`) is outlined on the archived frame."""
        middle = pd.Timestamp(event["start"]) + (pd.Timestamp(event["end"]) - pd.Timestamp(event["start"])) / 2
        moment = middle.to_pydatetime()
        if client is not None:
            return client.search.recorded_frame(int(event["camera_id"]), moment, width=width)
        site = str(event.get("site") or event["source"].split("site=")[1].split("/")[0])
        exports = self.exports(site)
        same_camera = exports["camera_id"] == int(event["camera_id"])
        if "server" in event and "server" in exports:
            same_camera &= exports["server"] == str(event["server"])
        row = exports[same_camera & (exports["start"] <= middle) & (exports["end"] > middle)]
        if row.empty:
            raise LookupError(f"no archived export of camera {event['camera_id']} covers {moment}")
        export = row.iloc[0]
        offset = (
            middle - (export["recorded_start"] if pd.notna(export.get("recorded_start")) else export["start"])
        ).total_seconds()
        bbox = event.get("bbox") if box else None
        region = tuple(float(v) for v in bbox) if bbox is not None and len(bbox) == 4 else None
        return _jpeg_at(self._local_copy(export), offset, width, region)

    def _local_copy(self, export: pd.Series) -> str:
        """A scratch copy of an export, streamed (never whole in memory) and kept for the next
        call: events come sorted by time, so consecutive ones mostly share an export. A
        sequential copy, because FFmpeg's seeks over a ranged S3 reader proved unreliable.

        On S3 the copy is of the version the manifest recorded, checked against its SHA-256:
        a frame shown as evidence is of the evidence, even if the key was overwritten since."""
        key = str(export["key"])
        recorded = export.get("version_id")  # NaN where a manifest recorded none
        version = recorded if self.store is not None and isinstance(recorded, str) and recorded else None
        if self._scratch is None or self._scratch[0] != (key, version):
            if self._scratch is not None:
                self._scratch[1].close()
                self._scratch = None
            local = tempfile.NamedTemporaryFile(suffix=Path(key).suffix)  # kept open for the next call
            digest = hashlib.sha256()
            for chunk in self._stream(key, version):
                digest.update(chunk)
                local.write(chunk)
            local.flush()
            expected = export.get("sha256")
            if isinstance(expected, str) and expected and digest.hexdigest() != expected:
                local.close()
                raise ValueError(f"{key} does not match the SHA-256 its manifest recorded")
            self._scratch = ((key, version), local)
        return self._scratch[1].name

    def _stream(self, key: str, version: str | None) -> Iterator[bytes]:
        if self.store is not None and version is not None:
            yield from self.store.iter_bytes(key, version)
            return
        with self.filesystem.open_input_stream(f"{self.base}/{key}") as stream:
            while chunk := stream.read(1 << 20):
                yield chunk


def _touching(gap: pd.Timedelta) -> Callable[[pd.DataFrame, pd.Timestamp, pd.Timestamp], pd.Series]:
    """Event rows that overlap [lo, hi) or meet it within `gap` (parts of one event)."""
    return lambda f, lo, hi: (f["end"] >= lo - gap) & (f["start"] < hi + gap)


def _with_duration(frame: pd.DataFrame) -> pd.DataFrame:
    frame["duration_s"] = (frame["end"] - frame["start"]).dt.total_seconds()
    return frame


def stitch(events: pd.DataFrame, gap_s: float | None = None) -> pd.DataFrame:
    """Events of one camera that meet across a chunk boundary (the next starts at most `gap_s`
    after the last ends: the detector's `merge_gap`, 1 s by default) as one event: earliest
    start, latest end, highest peak, frame-weighted mean, frames summed, boxes joined, the
    first part's source; `parts` counts the pieces. Only parts of different chunks (their
    `source`, the export) join: a chunk's own events stay apart whatever its camera's
    `merge_gap`. Rows sorted by camera and start; idempotent (stitched events stitch to
    themselves)."""
    gap = MotionConfig().merge_gap if gap_s is None else gap_s
    if events.empty:
        return events.assign(parts=pd.Series(dtype="int64"))
    frame = events.sort_values(["server", "camera_id", "start"]).reset_index(drop=True)
    if "parts" not in frame:
        frame["parts"] = 1
    camera = frame["server"].astype(str) + "/" + frame["camera_id"].astype(str)
    reached = frame.groupby(camera, sort=False)["end"].cummax().groupby(camera, sort=False).shift()
    apart = (frame["start"] - reached).dt.total_seconds() > gap + 1e-6
    # Two events of one chunk are two events, however close (its detector kept them apart,
    # with the camera's own merge_gap): only parts of different chunks join.
    same_chunk = frame["source"] == frame["source"].shift()
    piece = reached.isna() | apart | same_chunk  # reached is NaN at each camera's first event
    group = piece.cumsum()
    if bool(piece.all()):
        return frame
    boxes = frame["bbox"].map(lambda box: tuple(float(v) for v in box))
    weighted = frame["mean"].astype("float64") * frame["frames"]
    joined = frame.assign(_weighted=weighted, _box=boxes).groupby(group, sort=False)
    out = joined.agg(
        server=("server", "first"),
        camera_id=("camera_id", "first"),
        **({"camera_name": ("camera_name", "first")} if "camera_name" in frame else {}),
        start=("start", "min"),
        end=("end", "max"),
        peak=("peak", "max"),
        _weighted=("_weighted", "sum"),
        frames=("frames", "sum"),
        _box=("_box", _joined_box),
        source=("source", "first"),
        parts=("parts", "sum"),
    )
    out["mean"] = (out.pop("_weighted") / out["frames"].where(out["frames"] > 0)).fillna(0.0).astype("float32")
    out["bbox"] = [np.array(box, np.float32) for box in out.pop("_box")]
    columns = [c for c in frame.columns if c in out.columns]
    return out[columns].reset_index(drop=True)


def recorded_time(timeline: pd.DataFrame, gap_s: float = 1.0) -> pd.DataFrame:
    """What each camera recorded, as spans (server, camera_id, start, end) of a timeline's
    seconds: a second without a row was not recorded (or not analysed), which is not the
    same as a second without motion (a row with score 0)."""
    columns = ["server", "camera_id", "start", "end"]
    if timeline.empty:
        return pd.DataFrame({c: pd.Series(dtype=timeline[c].dtype if c in timeline else "object") for c in columns})
    keys = [c for c in ("server", "camera_id") if c in timeline]
    frame = timeline.sort_values([*keys, "ts"]).reset_index(drop=True)
    other_camera = (frame[keys] != frame[keys].shift()).any(axis=1)  # vectorised: a day is 86,400 rows a camera
    gap = frame["ts"].diff().dt.total_seconds()
    piece = (other_camera | (gap > 1.0 + gap_s)).cumsum()
    spans = frame.groupby(piece, sort=False).agg(
        **{k: (k, "first") for k in keys}, start=("ts", "min"), end=("ts", "max")
    )
    spans["end"] = spans["end"] + pd.Timedelta(seconds=1)  # a row stands for its whole second
    return spans.reset_index(drop=True).reindex(columns=[*keys, "start", "end"])


def _joined_box(boxes: pd.Series) -> list[float]:
    """The box around every box (x0, y0, x1, y1)."""
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _utc(moment: datetime) -> datetime:
    """A time without a zone is UTC (as everywhere in ev-ingest)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _day_start(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return _utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)


def _jpeg_at(video: bytes | str, seconds: float, width: int, region: tuple[float, ...] | None = None) -> bytes:
    """The frame at `seconds` of an export (MP4; bytes or a path), scaled to `width`, as JPEG;
    `region` (x0, y0, x1, y1 as fractions) outlined in green."""
    import av
    import cv2

    with av.open(io.BytesIO(video) if isinstance(video, bytes) else video) as container:
        stream = container.streams.video[0]
        base = stream.start_time or 0
        container.seek(int(base + seconds / float(stream.time_base)), stream=stream, backward=True)
        chosen = None
        for frame in container.decode(stream):
            chosen = frame
            if (frame.pts - base) * float(stream.time_base) >= seconds:
                break
        if chosen is None:
            raise LookupError("the export has no frame there")
        height = max(2, chosen.height * width // chosen.width // 2 * 2)
        image = chosen.to_ndarray(format="bgr24", width=width, height=height)
    if region is not None and all(v == v for v in region):  # NaN: the event has no region
        x0, y0, x1, y1 = region
        corners = (int(x0 * width), int(y0 * height)), (int(x1 * width) - 1, int(y1 * height) - 1)
        cv2.rectangle(image, corners[0], corners[1], (0, 255, 0), 2)
    ok, encoded = cv2.imencode(".jpg", image)
    if not ok:
        raise ValueError("could not encode the frame")
    return encoded.tobytes()
