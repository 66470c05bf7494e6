"""S3 keys of the archive, deterministic from (site, server, camera, interval).

Camera ids are only unique within one recording server (two NVRs number their cameras
the same way), so the server is a partition of every per-camera key:
`exports/site=S/server=V/camera=C/date=D/...`. Archives written before the server was
part of the identity (`.../site=S/camera=C/...`) stay readable: readers follow the keys
that manifests record, and `pipelines.analytics.datasets` lists both layouts.

The layout (DESIGN.md) is Hive-style so pyarrow, pandas, polars and duckdb read the
partitions directly. Site and camera parts are sanitised: anything outside
`[A-Za-z0-9._-]` becomes `_`, so a camera called `Gate; rm -rf /` or `../x` can never
break a key, a path or a shell command.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

MOTION_SUFFIX = "-motion"  # the run id of a nightly run's motion summaries: `<its run id>-motion`
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_PART = 100


def safe_part(value: object) -> str:
    """A key segment: no separators, no dot-dot, no control or shell characters, never empty."""
    text = _UNSAFE.sub("_", str(value)).strip("._") or "_"
    return re.sub(r"\.{2,}", "_", text)[:MAX_PART]


def _utc(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def stamp(moment: datetime) -> str:
    """Compact UTC time for key names: 20261120T090000Z."""
    return _utc(moment).strftime("%Y%m%dT%H%M%SZ")


def day(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%d")


def camera_prefix(site: str, server: str, camera: int | str) -> str:
    """The partition path of one camera of one server: `site=S/server=V/camera=C`."""
    return f"site={safe_part(site)}/server={safe_part(server)}/camera={safe_part(camera)}"


def export_key(site: str, server: str, camera: int | str, start: datetime, end: datetime, ext: str) -> str:
    return (
        f"exports/{camera_prefix(site, server, camera)}/date={day(start)}/{stamp(start)}_{stamp(end)}.{safe_part(ext)}"
    )


def thumbnail_key(site: str, server: str, camera: int | str, at: datetime) -> str:
    return f"thumbnails/{camera_prefix(site, server, camera)}/date={day(at)}/{stamp(at)}.jpg"


def contact_sheet_key(site: str, server: str, camera: int | str, on: datetime) -> str:
    return f"thumbnails/{camera_prefix(site, server, camera)}/date={day(on)}/contact_sheet.jpg"


def motion_key(kind: str, site: str, server: str, camera: int | str, start: datetime) -> str:
    if kind not in ("timeline", "events"):
        raise ValueError(f"motion summary kind must be 'timeline' or 'events', not {kind!r}")
    return f"motion/{kind}/{camera_prefix(site, server, camera)}/date={day(start)}/part-{stamp(start)}.parquet"


def motion_snapshot_key(site: str, server: str, camera: int | str, start: datetime, event_start: datetime) -> str:
    """The JPEG of one motion event of the export starting at `start`."""
    return (
        f"motion/snapshots/{camera_prefix(site, server, camera)}/date={day(start)}/"
        f"part-{stamp(start)}-event-{stamp(event_start)}.jpg"
    )


def manifest_key(site: str, on: datetime, run_id: str) -> str:
    return f"manifests/site={safe_part(site)}/date={day(on)}/{safe_part(run_id)}.json"


def audit_key(at: datetime, action: str) -> str:
    return f"audit/date={day(at)}/{_utc(at).strftime('%Y%m%dT%H%M%S%fZ')}-{safe_part(action)}.json"


def report_key(site: str, on: datetime, run_id: str) -> str:
    return f"reports/site={safe_part(site)}/date={day(on)}/{safe_part(run_id)}.html"
