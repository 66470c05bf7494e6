"""The HTML report of a nightly run: one self-contained file, stored beside the run and
linked from its motion manifest.

It holds what a person checks in the morning: what was archived (exports, bytes,
failures per camera), the activity heatmap, the event timeline, the busiest events as
frames decoded from the archived exports, and the table of events. Images are inline
PNG/JPEG data URIs, so the file opens anywhere, offline, and can be mailed or attached
to a case. Rendering is deterministic (no clock in it): a rerun over the same archive
gives the same bytes, and the store skips it.

    ev-ingest report --date 2026-11-19 -o report.html        # from the configured archive
"""

from __future__ import annotations

import base64
import html
import io
import logging
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from ev_ingest.store import ArchiveStore, ManifestEntry, Retention
from ev_ingest.store import keys as store_keys
from pipelines.analytics import plots
from pipelines.analytics.datasets import Archive, recorded_time

log = logging.getLogger(__name__)

EVENT_FRAMES = 8  # busiest events shown as frames: each costs a seek into an archived export
EVENT_ROWS = 25
SITE_WIDE = 0  # camera_id of a manifest entry that covers the whole site (the report)
SITE_WIDE_SERVER = ""  # and its server

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
.muted{color:#666} table{border-collapse:collapse;margin:.5em 0} img{max-width:100%;height:auto}
th,td{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right} th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left} .bad{color:#b00020;font-weight:600}
.frames{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:.8em}
figure{margin:0} figcaption{font-size:.85em;color:#555}
"""


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, metadata={"Software": None})  # no version: same bytes on rerun
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _jpeg(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, escape=True, na_rep="")


def _label(server: str, camera_id: int) -> str:
    """A camera's name in the report: camera ids are per server, so the server goes first."""
    return f"{server}/{camera_id}" if server else str(camera_id)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with a `camera` column of labels (server/camera)."""
    if frame.empty:
        return frame.assign(camera=pd.Series(dtype=str))
    servers = frame["server"] if "server" in frame else pd.Series([""] * len(frame), index=frame.index)
    return frame.assign(camera=[_label(s, int(c)) for s, c in zip(servers, frame["camera_id"], strict=True)])


def _camera_table(
    exports: pd.DataFrame, events: pd.DataFrame, quiet: pd.DataFrame, names: dict[str, str]
) -> pd.DataFrame:
    """One row per camera the manifests account for, including those that recorded nothing."""
    cameras = sorted(
        set(exports.get("camera", pd.Series(dtype=str)))
        | set(events["camera"])
        | set(quiet.get("camera", pd.Series(dtype=str)))
    )
    rows = []
    for camera in cameras:
        mine = exports[exports["camera"] == camera] if not exports.empty else exports
        theirs = events[events["camera"] == camera]
        silent = int((quiet["camera"] == camera).sum()) if not quiet.empty else 0
        busiest = theirs["start"].dt.hour.mode() if not theirs.empty else pd.Series(dtype=int)
        rows.append(
            {
                "camera": f"{camera} {names.get(camera, '')}".strip(),
                "exports": len(mine),
                "chunks without footage": silent,
                "MB archived": round(float(mine["size"].sum()) / 1e6, 1) if not mine.empty else 0.0,
                "motion events": len(theirs),
                "busiest hour (UTC)": f"{int(busiest.iloc[0]):02d}:00" if not busiest.empty else "",
                "peak % moving": round(float(theirs["peak"].max()) * 100, 1) if not theirs.empty else None,
            }
        )
    return pd.DataFrame(rows)


def _spread(events: pd.DataFrame, count: int) -> pd.DataFrame:
    """The `count` strongest events, at most an even share of them from any one camera."""
    per_camera = -(-count // max(1, events["camera"].nunique()))
    return events.sort_values("peak", ascending=False).groupby("camera").head(per_camera).nlargest(count, "peak")


def _event_frames(archive: Archive, events: pd.DataFrame, site: str) -> list[tuple[str, str]]:
    """(caption, data URI) of the busiest events, a frame from the middle of each, spread
    over the cameras (each camera's strongest first) so one busy camera does not fill the sheet."""
    frames = []
    chosen = _spread(events, EVENT_FRAMES)
    # Fetched camera by camera (consecutive events share the scratch copy of their export),
    # shown in time order.
    for _, event in chosen.sort_values(["camera", "start"]).iterrows():
        name = f" {event['camera_name']}" if event.get("camera_name") else ""
        caption = f"camera {event['camera']}{name} · {event['start']:%H:%M:%S} · {event['duration_s']:.0f} s"
        try:
            uri = _jpeg(archive.event_frame({**event.to_dict(), "site": site}, width=320))
        except (LookupError, ValueError, OSError) as exc:  # a missing export must not sink the report
            log.warning("no frame for %s: %s", caption, exc)
            caption, uri = f"{caption} (no frame: {exc})", ""
        frames.append((event["start"], caption, uri))
    return [(caption, uri) for _, caption, uri in sorted(frames, key=lambda f: f[0])]


def render(archive: Archive, site: str, start: datetime, end: datetime, recorder: Any = None) -> str:
    """The report of the site's runs over [start, end) as one HTML document; `recorder` (a
    `pipelines.nightly.horizon.Report`) adds the recorder-horizon table."""
    # The archival runs of the interval; motion manifests are left out: they link this report,
    # so reading them would make each rerun's report differ from the last.
    runs = [
        m
        for m in archive.manifests(site)
        if pd.Timestamp(m["interval_start"]) == pd.Timestamp(start)
        and not m["run_id"].endswith(store_keys.MOTION_SUFFIX)
    ]
    entries = [e for m in runs for e in m["entries"]]
    failures = [f for m in runs for f in m.get("failures", [])]
    silent = [q for m in runs for q in m.get("no_footage", [])]  # the server said: nothing recorded
    exports = _labelled(pd.DataFrame([e for e in entries if e["kind"] == "export"]))
    quiet = _labelled(pd.DataFrame(silent))
    names = {
        _label(e.get("server") or "", int(e["camera_id"])): e.get("camera_name", "")
        for e in [*silent, *(e for e in entries if e["kind"] == "export")]
    }
    # Motion partitions are UTC days; a site's local day spans two of them.
    days = ((end - timedelta(microseconds=1)).date() - start.date()).days + 1
    events = archive.motion_events(site, start=start, days=days)
    timeline = archive.motion_timeline(site, start=start, days=days)
    events = _labelled(events[(events["start"] >= pd.Timestamp(start)) & (events["start"] < pd.Timestamp(end))])
    timeline = _labelled(timeline[(timeline["ts"] >= pd.Timestamp(start)) & (timeline["ts"] < pd.Timestamp(end))])

    total_bytes = int(exports["size"].sum()) if not exports.empty else 0
    planned = sum(int(m.get("planned", 0)) for m in runs) or len(exports)
    summary = pd.DataFrame(
        [
            {"": "exports planned", "value": planned},
            {"": "exports archived (SHA-256 recorded)", "value": len(exports)},
            {"": "exports failed", "value": len([f for f in failures if f.get("kind") == "export"])},
            {"": "chunks without footage (the server recorded none)", "value": len(silent)},
            {"": "GB archived", "value": f"{total_bytes / 1e9:.3f}"},
            {"": "cameras", "value": len(names)},
            {"": "motion events", "value": len(events)},
        ]
    )
    # The busiest events across cameras: each camera's strongest first, so one busy camera
    # cannot fill the table.
    top = _spread(events, EVENT_ROWS).sort_values("start") if not events.empty else events
    event_rows = pd.DataFrame(
        {
            "camera": [f"{c} {names.get(c, '')}".strip() for c in top["camera"]],
            "start (UTC)": top["start"].dt.strftime("%H:%M:%S"),
            "end (UTC)": top["end"].dt.strftime("%H:%M:%S"),
            "seconds": top["duration_s"].round(1),
            "peak % moving": (top["peak"] * 100).round(1),
        }
    )
    title = f"{site}: nightly run {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<p class="muted">manifests: ' + ", ".join(html.escape(m["key"]) for m in runs) + "</p>"
        if runs
        else '<p class="bad">no manifest of this interval in the archive</p>',
        "<h2>Archive</h2>",
        _table(summary),
        _table(_camera_table(exports, events, quiet, names)) if names or not events.empty else "",
    ]
    if failures:
        parts += [
            '<h2 class="bad">Failures</h2>',
            _table(pd.DataFrame(failures).reindex(columns=["server", "camera_id", "start", "end", "kind", "error"])),
        ]
    if recorder is not None and recorder.as_of is not None:
        parts += _horizon_section(recorder)
    # The plots draw one row per `camera_id`: give them the labels (server/camera).
    heatmap = plots.activity_heatmap(timeline.assign(camera_id=timeline["camera"]), names)
    recorded = recorded_time(timeline.assign(camera_id=timeline["camera"]))
    bars = plots.event_timeline(events.assign(camera_id=events["camera"]), names, recorded)
    parts += [
        "<h2>Activity</h2>",
        f'<img alt="activity heatmap" src="{_png(heatmap)}">',
        f'<img alt="event timeline" src="{_png(bars)}">',
    ]
    if not events.empty:
        frames = _figures(_event_frames(archive, events, site))
        parts.append(f"<h2>Busiest events</h2><div class='frames'>{frames}</div>")
        parts += [f"<h2>Busiest events across cameras (top {EVENT_ROWS} by peak)</h2>", _table(event_rows)]
    parts.append("</body></html>")
    return "\n".join(parts)


def _horizon_section(recorder: Any) -> list[str]:
    """Per camera: what the archive still owes and when the recorder overwrites it, as of the run."""
    rows = pd.DataFrame(
        [
            {
                "camera": f"{_label(r.server, r.camera_id)} {r.camera_name}".strip(),
                "unarchived h": r.unarchived_hours,
                "oldest unarchived (UTC)": f"{r.oldest_unarchived:%Y-%m-%d %H:%M}" if r.oldest_unarchived else "",
                "overwritten in h": ""
                if r.hours_left is None or not r.unarchived_hours
                else f"{'>' if r.at_least else ''}{max(r.hours_left, 0):.1f}",
                "lost h": r.lost_hours,
                "owed nights": ", ".join(r.owed_nights),
            }
            for r in recorder.rows
        ]
    )
    heading = '<h2 class="bad">' if any(r.unarchived_hours for r in recorder.rows) else "<h2>"
    return [
        f"{heading}Recorder horizon</h2>",
        f'<p class="muted">as the run saw it, at {recorder.as_of:%Y-%m-%d %H:%M} UTC on the server&#39;s clock; '
        "footage still owed is archived oldest first by <code>ev-ingest archive --catch-up</code></p>",
        _table(rows),
    ]


def _figures(frames: list[tuple[str, str]]) -> str:
    def one(caption: str, uri: str) -> str:
        text = html.escape(caption)
        if not uri:
            return f"<figure><figcaption class='bad'>{text}</figcaption></figure>"
        return f'<figure><img alt="{text}" src="{uri}"><figcaption>{text}</figcaption></figure>'

    return "".join(one(caption, uri) for caption, uri in frames)


def publish(
    store: ArchiveStore,
    site: str,
    start: datetime,
    end: datetime,
    run_id: str,
    retention: Retention | None,
    recorder: Any = None,
) -> ManifestEntry:
    """Render the report from the archive, store it (skipped when the same bytes are there),
    and return its manifest entry (camera_id 0: it covers the whole site)."""
    document = render(Archive.from_store(store), site, start, end, recorder).encode()
    key = store_keys.report_key(site, start, run_id)
    # A rerun that archived more (a failed export completed) changes the report: a new version then.
    stored = store.put(key, document, content_type="text/html; charset=utf-8", retention=retention, if_changed=True)
    log.info("report %s: %d KB", key, len(document) // 1024)
    return ManifestEntry.of(
        stored, "report", server=SITE_WIDE_SERVER, camera_id=SITE_WIDE, start=start, end=end, retention=retention
    )


def report_link(manifest: Any) -> str | None:
    """The key of the report a (motion) manifest links to."""
    return next((e.key for e in manifest.entries if e.kind == "report"), None)
