"""The operator's night by hand: `ev-ingest archive`, `report` and `thumbnails` (no Airflow needed)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.cli.common import load_config, say_gaps
from pipelines.terminal import say

if TYPE_CHECKING:
    pass


def _day(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (YYYY-MM-DD)") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def _interval(config: Any, site: str, day: datetime) -> tuple[datetime, datetime]:
    """The site's local calendar day `day`, as UTC."""
    try:
        return config.site(site).local_day(day)
    except OverflowError:
        raise ValueError(f"{day:%Y-%m-%d} is out of range") from None


def cmd_archive(args: argparse.Namespace) -> int:
    from pipelines import connections
    from pipelines.compliance import signing_keys
    from pipelines.nightly import horizon
    from pipelines.nightly.run import run_nightly

    config = load_config(args.config)
    store = connections.open_store(config)
    store.ensure_bucket()
    site = args.site or config.sites[0].name
    nights = [args.date]
    if args.catch_up:
        # Oldest first: the oldest footage is the first the recorder overwrites (issue 25).
        # Back to `horizon.lookback_days` only: an older night's search could not reach the
        # server's now (servers answer 31 days at most); those stay owed and are shown.
        owed = horizon.owed_nights(horizon.horizon(store, signing_keys.verifier_for(config), config, site))
        reach = args.date - timedelta(days=config.horizon.lookback_days)
        nights = sorted({*(d for d in map(_day, owed) if reach <= d < args.date), args.date})[: args.max_nights]
    done, failed, lines = [], False, []
    for day in nights:
        start, end = _interval(config, site, day)
        result = run_nightly(config, store, site, start, end, summarize=not args.no_motion, progress=not args.json)
        manifest = result.manifest
        failed = failed or bool(result.failures)
        done.append(
            {
                "date": f"{day:%Y-%m-%d}",
                "manifest": manifest.key,
                "objects": len(manifest.entries),
                "failures": [f.model_dump(mode="json") for f in result.failures],
                "no_footage": [q.model_dump(mode="json") for q in manifest.no_footage],
                "complete": manifest.complete,
                "pending": manifest.pending,
                "motion_manifest": result.motion_manifest.key if result.motion_manifest else None,
            }
        )
        lines += [
            f"{site} {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC: {len(manifest.entries)} exports "
            f"archived, {len(manifest.no_footage)} chunks without footage (the server recorded none), "
            f"{len(result.failures)} failed",
            f"manifest: {manifest.key}",
        ]
        if not manifest.complete:
            lines += [
                f"partial: {manifest.pending} chunk slots had not ended on the server's clock; "
                f"run `ev-ingest archive --date {day:%Y-%m-%d}` again later to complete the day"
            ]
    synced = None
    if args.holds:  # the same sync as `retention apply --holds`, after the night is committed
        from pipelines.compliance import case_holds, records

        synced = case_holds.sync_site(store, config.site(site), records.audit_log(store, config))
        say_gaps(synced.gaps)
    rows = horizon.horizon(store, signing_keys.verifier_for(config), config, site)
    alerts = horizon.alerts(rows, config.horizon.margin_hours)
    owed = horizon.owed_nights(rows)
    payload = {**done[-1], "nights": done, "horizon": [r.as_json() for r in rows], "alerts": alerts}
    if synced is not None:
        payload["holds"] = synced.as_json()
        lines.append(f"legal holds: {json.dumps(synced.counts())}")
    lines += [f"ALERT: {a}" for a in alerts]
    skipped = args.date not in nights  # capacity went to older nights: the one asked for is owed
    if skipped:
        lines.append(f"{args.date:%Y-%m-%d} was not archived: --max-nights {args.max_nights} went to older nights")
    if owed:
        reach = (_day(owed[-1]) - timedelta(days=config.horizon.lookback_days)).strftime("%Y-%m-%d")
        lines.append(f"still owed: {', '.join(owed)}: `ev-ingest archive --catch-up --date {owed[-1]}` archives them")
        if owed[0] < reach:  # beyond the catch-up's reach: each by hand (its search may be refused)
            lines.append(f"older than horizon.lookback_days, archive by hand: ev-ingest archive --date {owed[0]}")
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        say(*lines)
    return 1 if failed or alerts or skipped or (synced is not None and synced.gaps) else 0


def cmd_report(args: argparse.Namespace) -> int:
    from pipelines import connections
    from pipelines.analytics import report
    from pipelines.analytics.datasets import Archive
    from pipelines.compliance import signing_keys
    from pipelines.nightly import horizon, motion_step, steps

    config = load_config(args.config)
    site = args.site or config.sites[0].name
    start, end = _interval(config, site, args.date)
    store = connections.open_store(config)
    recorder = horizon.at_night(store, signing_keys.verifier_for(config), config, site, start)  # as its run saw it
    if args.publish:
        run_id = motion_step.motion_run_id(steps.run_id_for(site, start))
        lock = steps.record_lock(config, site, end, [])
        entry = report.publish(store, site, start, end, run_id, lock, recorder)
        say(f"stored: s3://{store.settings.bucket}/{entry.key} (sha256 {entry.sha256})")
        document = store.get_bytes(entry.key, entry.version_id).decode()
    else:
        from ev_ingest.store.records import list_manifests

        if not list_manifests(store, site, start):
            raise ValueError(
                f"no nightly run of site {site!r} is archived for {args.date:%Y-%m-%d} "
                f"(`ev-ingest archive --date {args.date:%Y-%m-%d}` archives it)"
            )
        document = report.render(Archive.from_store(store), site, start, end, recorder)
    args.output.write_text(document)
    say(f"{args.output}: {len(document) // 1024} KB; open it in a browser")
    return 0


def cmd_thumbnails(args: argparse.Namespace) -> int:
    """A day's thumbnails of every camera into the archive, with each camera's contact sheet
    (what the ev_thumbnails DAG does hour by hour); `-o DIR` also saves the sheets there."""
    from pipelines import connections
    from pipelines.nightly.thumbnails import thumbnails_to_store
    from pipelines.progress import Progress

    config = load_config(args.config)
    store = connections.open_store(config)
    store.ensure_bucket()
    site = args.site or config.sites[0].name
    start, end = _interval(config, site, args.date)
    sheets: list[dict[str, Any]] = []
    for server in config.site(site).servers:
        with connections.connect(server) as client:
            cameras = [c for c in client.cameras.list() if server.wants(c.id) and args.camera in (None, c.id)]
            steps = Progress(f"thumbnails {server.name}", len(cameras))
            for camera in cameras:
                entries = thumbnails_to_store(
                    client, store, config, site, server.name, camera.id, camera.name, start, end
                )
                sheet = next((e for e in entries if e.kind == "contact_sheet"), None)
                row = {
                    "server": server.name,
                    "camera_id": camera.id,
                    "camera_name": camera.name,
                    "thumbnails": len(entries) - (sheet is not None),
                    "contact_sheet": sheet.key if sheet else None,
                }
                if sheet and args.output:
                    args.output.mkdir(parents=True, exist_ok=True)
                    local = args.output / f"{server.name}_{camera.id}_{args.date:%Y-%m-%d}_contact_sheet.jpg"
                    local.write_bytes(store.get_bytes(sheet.key, sheet.version_id))
                    row["saved"] = str(local)
                sheets.append(row)
                steps.step(f"camera {camera.id} {camera.name}", f"{row['thumbnails']} thumbnails")
    if not any(r["thumbnails"] for r in sheets):
        raise ValueError(f"no thumbnails of site {site!r} on {args.date:%Y-%m-%d}: nothing was recorded that day")
    lines = [
        f"{r['server']}/{r['camera_id']} {r['camera_name']}: {r['thumbnails']} thumbnails, "
        f"sheet s3://{store.bucket}/{r['contact_sheet']}" + (f" (saved {r['saved']})" if r.get("saved") else "")
        for r in sheets
    ]
    if args.json:
        print(json.dumps(sheets, indent=2))
    else:
        say(*lines)
    return 0


def register(sub: Any, command: Any) -> None:
    p = command("archive", cmd_archive, "run the nightly archival of one day (no Airflow needed)")
    p.add_argument("--config", type=Path, help="configuration file (default: $EV_CONFIG)")
    p.add_argument("--site", help="site name (default: the first)")
    p.add_argument("--date", type=_day, required=True, help="the site's local day to archive, YYYY-MM-DD")
    p.add_argument("--no-motion", action="store_true", help="skip the motion summaries")
    p.add_argument(
        "--catch-up",
        action="store_true",
        help="also archive every earlier night still owed (within horizon.lookback_days), oldest first",
    )
    p.add_argument(
        "--holds", action="store_true", help="then sync legal holds from the cases (as retention apply --holds)"
    )
    p.add_argument(
        "--max-nights", type=_positive, default=31, help="with --catch-up: archive at most this many nights (31)"
    )
    p = command("report", cmd_report, "the HTML report of a day's nightly run, from the archive")
    p.add_argument("--config", type=Path, help="configuration file (default: $EV_CONFIG)")
    p.add_argument("--site", help="site name (default: the first)")
    p.add_argument("--date", type=_day, required=True, help="the site's local day, YYYY-MM-DD")
    p.add_argument("-o", "--output", type=Path, default=Path("report.html"))
    p.add_argument("--publish", action="store_true", help="also store it in the archive (the DAGs do this)")
    p = command("thumbnails", cmd_thumbnails, "a day's thumbnails and each camera's contact sheet, into the archive")
    p.add_argument("--config", type=Path, help="configuration file (default: $EV_CONFIG)")
    p.add_argument("--site", help="site name (default: the first)")
    p.add_argument("--date", type=_day, required=True, help="the site's local day, YYYY-MM-DD")
    p.add_argument("--camera", type=int, help="only this camera (default: every camera the config includes)")
    p.add_argument("-o", "--output", type=Path, help="also save each contact sheet (JPEG) in this folder")
