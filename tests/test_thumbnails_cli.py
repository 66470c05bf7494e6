"""`ev-ingest thumbnails` (issue 18): a day's thumbnails and contact sheets without Airflow."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ev_ingest.store import ArchiveStore, StoreSettings
from tests.conftest import FROZEN_NOW, S3_SECRET
from tests.test_cli_errors import config_file, run  # noqa: F401  (config_file is a fixture)


@pytest.mark.slow  # out of `make check`'s inner loop; `make test` runs it
def test_a_days_thumbnails_and_contact_sheet(capsys, config_file, tmp_path, s3_server) -> None:  # noqa: F811
    day = f"{FROZEN_NOW - timedelta(days=1):%Y-%m-%d}"
    argv = ("thumbnails", "--config", str(config_file), "--date", day, "--camera", "4593152", "-o", str(tmp_path))
    code, out, err = run(capsys, *argv)
    sheet = tmp_path / f"nvr1_4593152_{day}_contact_sheet.jpg"
    assert code == 0 and sheet.read_bytes()[:2] == b"\xff\xd8", err
    assert "[thumbnails nvr1 1/1] camera 4593152" in err and "24 thumbnails" in out  # one an hour
    store = ArchiveStore(
        StoreSettings(
            bucket="cli-errors",
            endpoint_url=s3_server.endpoint_url,
            access_key=s3_server.access_key,
            secret_key=S3_SECRET,
        )
    )
    versions = [v.version_id for v in store.all_versions("thumbnails/")]
    code, out, _ = run(capsys, *argv)  # a rerun stores nothing new and says the same
    assert code == 0 and "24 thumbnails" in out
    assert [v.version_id for v in store.all_versions("thumbnails/")] == versions
