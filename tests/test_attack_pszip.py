"""Attack: the pre-roll of a previous export that is a ps_zip (one long program stream)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ev_ingest.store.ranged import RangedObject
from pipelines.nightly import motion_step as motion
from pipelines.video import media
from tests.test_attack_fmp4 import StubStore
from tests.test_motion import site_export


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="not yet: a ps_zip member is read through zipfile, whose backward seeks re-read it; the pre-roll "
    "reads up to its 64 MiB budget and the chunk starts cold (docs/data-science.md)",
)
def test_the_tail_of_a_ps_zip_reads_only_its_end():
    """media.tail says "Reads only what it needs ... of a ps_zip, its last member's". Over
    a ranged object, the last member is read through zipfile's ZipExtFile, whose backward
    seeks re-read the member from its start: a 20-minute ps_zip of 17.5 MB makes the
    reader fetch its 64 MiB budget (3.8x the file) and the chunk starts cold anyway."""
    data, _, _ = site_export(0, datetime(2026, 11, 20, 9, tzinfo=UTC), 20, fmt="ps_zip")
    source = RangedObject(StubStore(data), "exports/x.zip", None, len(data))
    tail = media.tail(source, motion.PREROLL_S, size=len(data), duration_s=1200)
    assert tail.ends_s is not None
    assert source.fetched < len(data) / 4, (source.fetched, len(data))
