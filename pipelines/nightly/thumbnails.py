"""Thumbnails step: a thumbnail search per camera and interval, its frames and a contact sheet.

Frames land at `thumbnails/site=/camera=/date=/<ts>.jpg` and a captioned grid of them
at `.../contact_sheet.jpg`. Idempotent (existing keys are skipped).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import cv2
import numpy as np

from ev_ingest.client import ExacqClient
from ev_ingest.store import ArchiveStore, ManifestEntry, StoredObject
from ev_ingest.store import keys as store_keys
from ev_ingest.store.records import EntryKind
from pipelines.config import PipelineConfig

log = logging.getLogger(__name__)


def contact_sheet(frames: list[tuple[datetime, bytes]], columns: int, width: int) -> bytes:
    """A grid of thumbnails, each captioned with its UTC time, as one JPEG."""
    tiles = []
    for at, jpeg in frames:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            continue
        height = max(1, image.shape[0] * width // image.shape[1])
        tile = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        cv2.rectangle(tile, (0, height - 18), (width, height), (0, 0, 0), -1)
        cv2.putText(
            tile,
            at.strftime("%H:%M:%S"),
            (4, height - 5),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        tiles.append(tile)
    if not tiles:
        raise ValueError("no decodable thumbnails for a contact sheet")
    height = max(t.shape[0] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, height - t.shape[0], 0, 0, cv2.BORDER_CONSTANT) for t in tiles]
    blank = np.zeros_like(tiles[0])
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    rows[-1] += [blank] * (columns - len(rows[-1])) if len(rows) > 1 else []
    sheet = np.vstack([np.hstack(row) for row in rows])
    ok, encoded = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("could not encode the contact sheet")
    return encoded.tobytes()


def thumbnails_to_store(
    client: ExacqClient,
    store: ArchiveStore,
    config: PipelineConfig,
    site: str,
    server: str,
    camera_id: int,
    camera_name: str,
    start: datetime,
    end: datetime,
) -> list[ManifestEntry]:
    """Store the thumbnails of one camera of one server over [start, end) and the day's
    contact sheet; identical bytes add no version (reruns write nothing new)."""
    settings = config.thumbnails
    found = client.search.thumbnails(camera_id, start, end, settings.interval_s)
    retention = config.retention.lock(site, server, camera_id, end)

    def entry(stored: StoredObject, kind: EntryKind, first: datetime, last: datetime) -> ManifestEntry:
        return ManifestEntry.of(
            stored,
            kind,
            server=server,
            camera_id=camera_id,
            camera_name=camera_name,
            start=first,
            end=last,
            retention=retention,
        )

    entries: list[ManifestEntry] = []
    frames: list[tuple[datetime, bytes]] = []
    for index, at in enumerate(found.frames_timestamps):
        jpeg = client.search.thumbnail(camera_id, start, end, settings.interval_s, index, width=settings.width)
        frames.append((at, jpeg))
        stored = store.put(
            store_keys.thumbnail_key(site, server, camera_id, at),
            jpeg,
            content_type="image/jpeg",
            retention=retention,
            if_changed=True,
        )
        entries.append(entry(stored, "thumbnail", at, at))
    if frames:
        # The day's sheet holds every thumbnail of the day stored so far, not just this run's.
        prefix = store_keys.thumbnail_key(site, server, camera_id, start).rsplit("/", 1)[0] + "/"
        day = [(k, store.get_bytes(k)) for k in sorted(store.list_keys(prefix)) if not k.endswith("contact_sheet.jpg")]
        frames = [
            (datetime.strptime(k.rsplit("/", 1)[1][:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC), jpeg) for k, jpeg in day
        ] or frames
        sheet = contact_sheet(frames, settings.sheet_columns, settings.width)
        stored = store.put(
            store_keys.contact_sheet_key(site, server, camera_id, start),
            sheet,
            content_type="image/jpeg",
            retention=retention,
            if_changed=True,
        )
        entries.append(entry(stored, "contact_sheet", start, end))
    log.info("%s camera %s: %d thumbnails stored", server, camera_id, len(frames))
    return entries
