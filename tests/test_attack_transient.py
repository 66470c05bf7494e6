"""Attack: "out of order / alone / on another worker: the same bytes; reruns add no version"
against a store that is briefly unavailable while the pre-roll is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from ev_ingest.store import ManifestEntry
from pipelines.nightly import motion_step as motion

START = datetime(2026, 11, 20, 10, tzinfo=UTC)


class Flaky:
    bucket = "b"

    def __init__(self, error):
        self.s3, self.error = self, error

    def get_object(self, **_):
        raise self.error


PREVIOUS = ManifestEntry(
    key="exports/prev.mp4",
    kind="export",
    version_id="v1",
    size=10_000_000,
    sha256="0" * 64,
    server="nvr1",
    camera_id=1,
    start=START - timedelta(hours=1),
    end=START,
)


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "GetObject"),
        ClientError({"Error": {"Code": "InternalError", "Message": "We encountered an internal error"}}, "GetObject"),
        EndpointConnectionError(endpoint_url="http://s3:8333"),
    ],
)
def test_a_transient_store_error_is_not_a_cold_start(error):
    """_preroll turns a throttled / failing / unreachable store into "no pre-roll" (logged
    as a warning) and the chunk is summarised and stored cold: its bytes differ from the
    warm summary another run or worker writes, so a rerun adds a version (or, with the
    committed summaries reused, the chunk stays cold for good). A transient error should
    fail (retry) the task; only content that cannot be read should cost the pre-roll."""
    with pytest.raises((ClientError, EndpointConnectionError)):
        motion._preroll(Flaky(error), PREVIOUS, START)
