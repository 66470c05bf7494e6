"""The compliance officer's verbs: `retention ...`, `audit log`, `keys ...`, `case export`, `verify`.

ev-ingest retention status [--date D]        what is protected, until when, held by whom
ev-ingest retention horizon                  per camera: unarchived hours, hours until the recorder overwrites
ev-ingest retention audit [--deep]           signatures, chains, every object; exit 1 on findings
          [--checkpoint F] [--checkpoint-out F]  nothing lost since an earlier checkpoint; keep the new one
ev-ingest retention apply [--holds]          extend retention to the policy; sync case holds
ev-ingest retention hold|release             by --key, or by --camera and --start/--end
ev-ingest retention dispose [--yes]          expired, unheld versions (deleted only with --yes)
ev-ingest audit log [--date D]               the audit trail, each record's signature checked
ev-ingest keys init -o FILE | keys show      the signing key
ev-ingest case export CASE -o case.zip       a self-verifying evidence package
ev-ingest verify case.zip --fingerprint FP  check a package offline against a key you trust
                                             (exit 0 VERIFIED, 1 FAILED, 3 signer unknown)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.cli.common import load_config, parse_time, say_gaps
from pipelines.terminal import say

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig


def _print(args: argparse.Namespace, payload: Any, lines: list[str]) -> None:
    """JSON with --json, else the lines, each made safe: keys and fields come from the store."""
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        say(*lines)


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    from pipelines import connections

    config = load_config(args.config)
    # Few tries per request: an audit of a damaged store must report, not stall for minutes
    # on every unreadable object (the archival keeps the store's patient default).
    return config, connections.open_store(config, max_attempts=3)


# The retention verbs that only read: they run with the public keys alone.
READ_ONLY_ACTIONS = ("status", "horizon", "audit")


def cmd_retention(args: argparse.Namespace) -> int:
    from pipelines.compliance import audit_checkpoint, auditor, case_holds, disposal, holds, policy, records, status

    config, store = _open(args)
    # What only reads works with the public keys alone: an outside auditor has no private key.
    # A key given on the command line decides nothing that writes.
    read_only = args.action in READ_ONLY_ACTIONS
    if args.public_key and not read_only:
        raise ValueError(
            f"--public-key is for {', '.join(READ_ONLY_ACTIONS)}: `{args.action}` trusts the configured keys only"
        )
    extra = [args.public_key] if args.public_key else None
    log = records.audit_log(store, config, read_only=read_only, extra=extra)
    if args.action == "audit" and args.checkpoint_out and log.signer is None:
        raise ValueError("--checkpoint-out needs the signing key: a checkpoint is signed")
    if args.action == "status":
        unreadable: list[str] = []
        rows = status.status(store, config, log, args.site, args.date, unreadable)
        lines = [
            f"{'site':<8} {'server':<8} {'camera':<24} {'day':<10} {'objects':>7} {'GB':>6}  "
            f"{'mode':<11} {'retained until':<25} held"
        ]
        for r in rows:
            mode = "+".join(r.modes) or ("NONE" if r.objects else "-")  # "-": nothing archived to protect
            lines.append(
                f"{r.site:<8} {r.server:<8} {f'{r.camera_id} {r.camera_name}'[:24]:<24} {r.day:<10} {r.objects:>7} "
                f"{r.size / 1e9:>6.2f}  {mode:<11} {r.retain_until or '-':<25} "
                f"{r.held}{' by ' + ', '.join(r.holders) if r.holders else ''}"
                f"{f'  MISSING {r.missing}' if r.missing else ''}"
                f"{f'  FAILED {r.failed} chunks' if r.failed else ''}"
                f"{f'  no footage in {r.no_footage} chunks (the server recorded none)' if r.no_footage else ''}"
            )
        if not rows:
            lines = ["nothing archived" + (f" on {args.date}" if args.date else "")]
        if not args.date:  # the recorder's horizon is about now, not about one day
            lines += ["", *_horizon_lines(_horizons(store, config, args.site, [], log.verifier), config)[0]]
        _print(args, [asdict(r) for r in rows], lines)
        for key in unreadable:
            say(f"ev-ingest retention: manifest {key} could not be read: run `retention audit`", file=sys.stderr)
        return 1 if unreadable or any(r.missing for r in rows) else 0
    if args.action == "horizon":
        untrusted: list[str] = []
        found = _horizons(store, config, args.site, untrusted, log.verifier)
        lines, alerts = _horizon_lines(found, config)
        _print(args, {"horizon": [r.as_json() for r in found], "alerts": alerts}, lines)
        for key in untrusted:
            say(f"ev-ingest retention: manifest {key} could not be read: run `retention audit`", file=sys.stderr)
        return 1 if alerts or untrusted else 0
    if args.action == "audit":
        earlier = args.checkpoint or config.retention.checkpoint_file
        if args.checkpoint is None and earlier is not None and not earlier.exists():
            earlier = None  # the configured file's first audit: nothing to compare with yet
        report = auditor.audit(
            store,
            config,
            args.site,
            deep=args.deep,
            audit_log=log,
            verifier=log.verifier,
            checkpoint=audit_checkpoint.load_checkpoint(earlier) if earlier else None,
        )
        kept = audit_checkpoint.keep_checkpoint(report, args.checkpoint_out or config.retention.checkpoint_file)
        lines = [
            f"checked {report.records} signed records and {report.checked} objects "
            f"({'re-hashed' if args.deep else f'metadata, {report.verified} re-hashed'}): "
            f"{'OK' if report.ok else f'{len(report.findings)} findings'}; "
            + (f"record {report.audit_key}" if report.audit_key else "not recorded (public keys only)")
        ]
        lines += [f"  {f.problem:<16} {f.key}  {f.detail}" for f in report.findings]
        if earlier:
            lines.append(f"compared with the checkpoint {earlier}")
        lines += audit_checkpoint.checkpoint_lines(report.checkpoint, kept)
        _print(args, report.as_json(), lines)
        return 0 if report.ok else 1
    if args.action == "apply":
        result: dict[str, Any] = policy.apply_policy(store, config.retention, args.site, log)
        gaps: list[case_holds.Gap] = []
        if args.holds:
            synced = case_holds.sync_site(store, config.site(args.site or config.sites[0].name), log)
            result["holds"], gaps = synced.as_json(), synced.gaps
        _print(args, result, [json.dumps(result)])
        unreadable = result["unreadable"] + result.get("holds", {}).get("unreadable", 0)
        if unreadable:
            say(
                f"ev-ingest retention: {unreadable} objects could not be read or were not trusted: "
                "run `retention audit`",
                file=sys.stderr,
            )
        say_gaps(gaps)
        return 1 if unreadable or gaps else 0
    if args.action == "dispose":
        candidates = disposal.expired(store)
        lines = [f"{len(candidates)} expired, unheld versions ({sum(c.size for c in candidates) / 1e9:.2f} GB)"]
        lines += [f"  {c.key}@{c.version_id}  retained until {c.retain_until}" for c in candidates]
        if args.yes and candidates:
            deleted = disposal.dispose(store, candidates, log)
            lines.append(f"deleted {deleted} (each recorded in the audit log)")
        elif candidates:
            lines.append("nothing deleted: run again with --yes to delete them")
        _print(args, [asdict(c) for c in candidates], lines)
        return 0
    # hold / release
    on = args.action == "hold"
    if args.key:
        version = holds.set_hold(store, args.key, on, args.reason, log, force=args.force)
        changed = [f"{args.key}@{version}"]
    elif args.camera is not None:
        if args.start is None or args.end is None:
            raise ValueError("--camera needs --start and --end")
        entries = holds.select_entries(store, log.verifier, args.site, args.server, args.camera, args.start, args.end)
        changed = holds.hold_range(store, entries, on, args.reason, log, force=args.force)
    else:
        raise ValueError(f"{args.action} needs --key, or --camera with --start and --end")
    _print(args, {"legal_hold": on, "objects": changed}, [f"{'held' if on else 'released'}: {k}" for k in changed])
    return 0


def cmd_audit_log(args: argparse.Namespace) -> int:
    from ev_ingest.store.signing import AUDIT
    from pipelines.compliance.records import audit_log

    config, store = _open(args)
    log = audit_log(store, config, read_only=True, extra=[args.public_key] if args.public_key else None)
    verifier = log.verifier
    checked = [(r.shown(), r.check(verifier, AUDIT)) for r in log.records(args.date)]
    if args.action:
        checked = [(r, t) for r, t in checked if r.get("action") == args.action]
    records = [r for r, _ in checked]
    lines = []
    for record, trouble in checked:
        what = {k: v for k, v in record.items() if k not in ("action", "at", "signature", "previous", "sequence")}
        detail = " ".join(f"{k}={v}" for k, v in what.items() if k != "findings")
        if "findings" in what:
            detail += f" findings={len(what['findings'])}"
        lines.append(
            f"{str(record.get('at', '?'))[:19]} #{record.get('sequence', '?')} {str(record.get('action', '?')):<19} "
            f"{'signed' if trouble is None else 'NOT TRUSTED (' + trouble + ')'}  {detail}"
        )
    if not records:
        lines = ["no audit records" + (f" on {args.date}" if args.date else "")]
    _print(args, records, lines)
    return 0 if all(t is None for _, t in checked) else 1


def cmd_keys(args: argparse.Namespace) -> int:
    from ev_ingest.store.signing import Signer, public_pem

    if args.action == "init":
        if not args.output:
            raise ValueError("keys init needs -o FILE (the new private key, mode 0600)")
        signer = Signer.generate()
        signer.write(args.output)
        say(
            f"{args.output}: new Ed25519 signing key, fingerprint {signer.fingerprint}",
            "keep the fingerprint in your own records: verifiers check packages against it",
        )
        return 0
    from pipelines.compliance import records, signing_keys

    config, store = _open(args)
    signer = signing_keys.signer_for(config)
    published = signing_keys.publish_public_key(store, signer, records.records_lock(config)) if args.publish else None
    _print(
        args,
        {"fingerprint": signer.fingerprint, "public_key": public_pem(signer.public).decode(), "published": published},
        [f"fingerprint {signer.fingerprint}", *public_pem(signer.public).decode().strip().splitlines()]
        + ([f"published: s3://{store.bucket}/{published}"] if published else []),
    )
    return 0


def cmd_case(args: argparse.Namespace) -> int:
    from pipelines.compliance import case_holds, evidence, records, signing_keys

    config, store = _open(args)
    signer = signing_keys.signer_for(config)
    site = config.site(args.site or config.sites[0].name)
    listings = case_holds.listings_of(site)
    found = next((c for listing in listings for c in listing.cases if args.case in (c.guid, c.name)), None)
    if found is None:
        raise ValueError(f"no case {args.case!r} on the servers of site {site.name!r}")
    covers, gaps = case_holds.coverage(listings, [s.name for s in site.servers])
    for gap in gaps:  # the package is made, and says what it may lack
        say(f"ev-ingest case: {gap.server}: {gap.detail}: the package may lack footage", file=sys.stderr)
    entries = evidence.case_entries(store, signing_keys.verifier_for(config), site.name, found, covers)

    def progress(done: int, total: int, key: str) -> None:
        say(f"[{done}/{total}] {key}", file=sys.stderr)

    package = evidence.build_package(store, signer, found, entries, args.output, progress=progress)
    audit_key = records.audit_log(store, config).record(
        "case-export", case=found.guid, name=found.name, footage=len(package.footage), package_size=package.size
    )
    _print(
        args,
        {**asdict(package), "path": str(package.path), "audit_key": audit_key},
        [
            f"{package.path}: case {package.case}, {len(package.footage)} footage files, {package.records} signed "
            f"records, {package.size / 1e6:.1f} MB; signed by {signer.fingerprint}",
            f"check it anywhere with: ev-ingest verify {package.path} --fingerprint {signer.fingerprint}",
        ],
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ev_ingest.store.signing import load_public_key
    from pipelines.compliance import evidence

    keys = [load_public_key(path.read_bytes()) for path in args.key or []]
    check = evidence.verify_package(args.package, args.fingerprint, keys)
    status = "VERIFIED" if check.verified else "FAILED" if not check.ok else "SIGNER UNKNOWN"
    lines = [
        f"{args.package}: case {check.case or '?'}, {check.footage} footage files, {check.files} files, "
        f"{check.records} records, key {check.fingerprint}: {status}"
    ]
    if check.ok and not check.trusted:
        lines.append(
            "consistent with the key inside the package, which proves nothing by itself: give the signer's "
            "whole fingerprint (--fingerprint) or public key (--key) from your own records"
        )
    lines += [f"  {p}" for p in check.problems]
    _print(args, {**asdict(check), "status": status}, lines)
    return 0 if check.verified else 1 if not check.ok else UNKNOWN_SIGNER_EXIT


UNKNOWN_SIGNER_EXIT = 3  # verify: nothing wrong found, but no trusted key vouches for it


def _horizons(store: Any, config: PipelineConfig, site: str | None, unreadable: list[str], verifier: Any) -> list[Any]:
    from pipelines.nightly import horizon

    sites = [site] if site else [s.name for s in config.sites]
    return [r for name in sites for r in horizon.horizon(store, verifier, config, name, unreadable)]


def _horizon_lines(rows: list[Any], config: PipelineConfig) -> tuple[list[str], list[str]]:
    """The recorder-horizon table (one row per camera) and its alerts."""
    from pipelines.nightly import horizon

    alerts = horizon.alerts(rows, config.horizon.margin_hours)
    lines = [
        f"recorder horizon (alert within {config.horizon.margin_hours:g} h of an overwrite):",
        f"{'site':<8} {'server':<8} {'camera':<24} {'unarchived':>10}  {'oldest unarchived':<17} "
        f"{'overwritten in':>14} {'lost':>6}",
    ]
    for r in rows:
        left = "-" if r.hours_left is None else f"{'>' if r.at_least else ''}{max(r.hours_left, 0):.1f} h"
        if not r.unarchived_hours:
            left = ""
        oldest = f"{r.oldest_unarchived:%Y-%m-%d %H:%M}" if r.oldest_unarchived else "-"
        lines.append(
            f"{r.site:<8} {r.server:<8} {f'{r.camera_id} {r.camera_name}'[:24]:<24} {r.unarchived_hours:>8.1f} h  "
            f"{oldest:<17} {left:>14} {r.lost_hours:>4.1f} h"
        )
    if not rows:
        lines.append("no nightly run archived yet")
    return lines + [f"ALERT: {a}" for a in alerts], alerts


def register(sub: Any, command: Any) -> None:
    def config_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, help="configuration file (default: $EV_CONFIG)")
        p.add_argument("--site", help="site name (default: every site, or the first where one is needed)")

    p = command("retention", cmd_retention, "what is protected; retention, legal holds, the audit, disposal")
    p.add_argument("action", choices=["status", "horizon", "audit", "apply", "hold", "release", "dispose"])
    config_options(p)
    p.add_argument("--date", help="status: only the site's local day YYYY-MM-DD")
    p.add_argument("--deep", action="store_true", help="audit: re-read and re-hash every object")
    p.add_argument(
        "--public-key", type=Path, help="status, horizon, audit: also trust this public key (PEM); enough alone"
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="audit: prove nothing was lost or rewritten since this checkpoint (default: retention.checkpoint_file)",
    )
    p.add_argument(
        "--checkpoint-out",
        type=Path,
        help="audit: write the new signed checkpoint here, outside the bucket (default: retention.checkpoint_file)",
    )
    p.add_argument("--holds", action="store_true", help="apply: also sync legal holds from exacqVision cases")
    p.add_argument("--key", help="hold/release: one object's key")
    p.add_argument("--server", help="hold/release: the camera's server")
    p.add_argument("--camera", type=int, help="hold/release: every export of this camera in --start..--end")
    p.add_argument("--start", type=parse_time, help="hold/release: from (ISO time; no zone = UTC)")
    p.add_argument("--end", type=parse_time, help="hold/release: until (ISO time; no zone = UTC)")
    p.add_argument("--reason", default="manual", help="hold/release: kept in the audit log")
    p.add_argument("--force", action="store_true", help="release: even what a case or a person holds (audited)")
    p.add_argument("--yes", action="store_true", help="dispose: really delete")

    p = command("audit", cmd_audit_log, "the audit trail, each record's signature checked")
    p.add_argument("target", choices=["log"])
    config_options(p)
    p.add_argument("--date", help="only records of this UTC day, YYYY-MM-DD")
    p.add_argument("--action", help="only this action (audit, legal-hold, retention, dispose, ...)")
    p.add_argument("--public-key", type=Path, help="also trust this public key (PEM); enough alone")

    p = command("keys", cmd_keys, "the Ed25519 key that signs manifests and audit records")
    p.add_argument("action", choices=["init", "show"])
    p.add_argument("--config", type=Path, help="configuration file (default: $EV_CONFIG)")
    p.add_argument("-o", "--output", type=Path, help="init: where to write the new private key (mode 0600)")
    p.add_argument("--publish", action="store_true", help="show: also store the public key in the bucket")

    p = command("case", cmd_case, "export a case's footage as a self-verifying evidence package")
    p.add_argument("target", choices=["export"])
    p.add_argument("case", help="the case's name or guid on the recording server")
    config_options(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="the package (.zip) to write")

    p = command("verify", cmd_verify, "check an evidence package offline, with only its public key")
    p.add_argument("package", type=Path)
    p.add_argument(
        "--fingerprint", help="the signing key's whole fingerprint (at least 32 hex digits) from your own records"
    )
    p.add_argument("--key", type=Path, action="append", help="a trusted public key (PEM); may be repeated")
