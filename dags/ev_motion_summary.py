"""ev_motion_summary: motion summaries of what ev_nightly_archive archived.

Scheduled on the nightly manifest Asset; mapped over the manifest's exports; writes the
per-second timeline and the events as Parquet, then the HTML report of the run and
the motion manifest that links it. Each run also catches up the nights of the last
`motion_step.CATCH_UP_DAYS` that have no motion manifest yet (a motion run that failed or
never ran). A manual run takes `{"manifest": "<key>"}` (that night only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task
from ev_tasks import DEFAULT_ARGS, NIGHTLY_MANIFEST, load, store_for


@dag(
    dag_id="ev_motion_summary",
    schedule=[NIGHTLY_MANIFEST],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params={"manifest": Param(None, type=["null", "string"], description="a nightly manifest key")},
    tags=["ev-ingest", "motion"],
    doc_md=__doc__,
)
def ev_motion_summary() -> None:
    @task(multiple_outputs=False)
    def exports(**context: Any) -> list[dict[str, Any]]:
        """The exports listed by the manifests that triggered this run."""
        from ev_ingest.store.records import verified_manifest
        from pipelines.compliance import signing_keys
        from pipelines.nightly import motion_step

        config = load()
        store = store_for(config)
        if context["params"].get("manifest"):
            keys = [context["params"]["manifest"]]
        else:
            keys = [
                key
                for event in context["triggering_asset_events"].get(NIGHTLY_MANIFEST, [])
                for key in (event.extra or {}).get("manifests", [])
            ]
            # A night whose motion run failed or never ran is summarised by the next run.
            keys += [k for k in motion_step.unsummarised(store, [s.name for s in config.sites]) if k not in keys]
        verifier = signing_keys.verifier_for(config)
        items = []
        for key in keys:
            # Only a verified manifest is summarised; any other is logged and costs only itself.
            manifest = verified_manifest(store, verifier, key)
            if manifest is None:
                continue
            # Each chunk is pre-rolled with the chunk before it (the night before's last for
            # the first): a camera-day is one stream, whichever worker summarises which part.
            earlier = motion_step.night_before(store, verifier, manifest.site, manifest.interval_start)
            before = motion_step.previous_chunks(manifest.exports(), earlier)
            items += [
                {
                    "manifest": key,
                    "site": manifest.site,
                    "interval_start": manifest.interval_start.isoformat(),
                    "entry": e.model_dump(mode="json"),
                    "previous": before[e.key].model_dump(mode="json") if e.key in before else None,
                }
                for e in manifest.exports()
            ]
        return items

    @task(multiple_outputs=False)
    def summarize(item: dict[str, Any]) -> list[dict[str, Any]]:
        from ev_ingest.store import ManifestEntry, RecordIndex
        from pipelines.compliance import signing_keys
        from pipelines.nightly.motion_step import summarize_export

        config = load()
        store = store_for(config)
        export = ManifestEntry.model_validate(item["entry"])
        records = RecordIndex.of_day(
            store, item["site"], datetime.fromisoformat(item["interval_start"]), signing_keys.verifier_for(config)
        )
        previous = ManifestEntry.model_validate(item["previous"]) if item.get("previous") else None
        entries = summarize_export(
            store, config, item["site"], export, workers=config.motion_workers, records=records, previous=previous
        )
        return [e.model_dump(mode="json") for e in entries]

    @task(multiple_outputs=False)
    def commit(items: list[dict[str, Any]], summaries: list[list[dict[str, Any]]]) -> dict[str, Any]:
        from ev_ingest.store import ManifestEntry
        from ev_ingest.store.records import verified_manifest
        from pipelines.analytics import report
        from pipelines.compliance import signing_keys
        from pipelines.nightly import horizon, motion_step, steps

        config = load()
        store = store_for(config)
        flat = [ManifestEntry.model_validate(entry) for group in summaries if group for entry in group]
        written = {}
        for key in sorted({i["manifest"] for i in items}):
            nightly = verified_manifest(store, signing_keys.verifier_for(config), key)
            if nightly is None:  # changed since `exports` read it: logged, and costs only itself
                continue
            mine = [e for e in flat if e.derived_from in {x.key for x in nightly.exports()}]
            run_id = motion_step.motion_run_id(nightly.run_id)
            page = report.publish(
                store,
                nightly.site,
                nightly.interval_start,
                nightly.interval_end,
                run_id,
                steps.record_lock(config, nightly.site, nightly.interval_end, nightly.exports()),
                horizon.at_night(
                    store, signing_keys.verifier_for(config), config, nightly.site, nightly.interval_start
                ),
            )
            manifest = steps.commit_manifest(
                store,
                config,
                nightly.site,
                run_id,
                nightly.interval_start,
                nightly.interval_end,
                [*mine, page],
                motion_step.coverage_failures(mine),  # a partial summary is a recorded failure
                len(nightly.exports()),
            )
            written[key] = {"manifest": manifest.key, "summaries": len(mine), "report": page.key}
        return written

    items = exports()
    commit(items, summarize.expand(item=items))


ev_motion_summary()
