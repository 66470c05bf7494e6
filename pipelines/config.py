"""The typed configuration of an ev-ingest deployment (a YAML or JSON file).

Sites, their servers, which cameras to include or exclude, export chunk length and
format, retention, motion and thumbnail settings come from here, not from code.
Strict: an unknown or invalid field is an error that names it.

```yaml
sites:
  - name: HQ
    timezone: America/New_York        # the nightly run archives the previous local day
    servers:
      - name: nvr1
        url: exacqvision://archiver@10.0.0.5:80/?server_id=0   # no password here
        password_env: EV_PASSWORD_NVR1                          # or an Airflow connection:
        airflow_conn_id: exacqvision_nvr1
        exclude_cameras: [4593920]
        max_concurrent_exports: 2
export: {format: mp4, chunk_minutes: 60}
store: {bucket: ev-archive, endpoint_url: null}
horizon: {margin_hours: 24, lookback_days: 7}            # alert before the recorder overwrites
retention: {mode: GOVERNANCE, days: 30, sites: {HQ: {days: 90}}, servers: {nvr1: {days: 60}},
            cameras: {"HQ/nvr1/4593152": {days: 365}}}  # site/server/camera (or server/camera, a bare id)
signing: {key_file: /etc/ev-ingest/signing.pem}         # mode 0600; or the ev_signing connection
motion_cameras:                                         # zones, masks and sensitivity per camera
  "nvr1/4593152": {masks: [[0, 0, 0.3, 0.08]], min_region: 0.003}   # the on-screen clock
```

Secrets never live in this file: passwords come from the environment (`password_env`)
or from Airflow connections; the signing key from a 0600 file or the `ev_signing`
connection.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ev_ingest import clock
from ev_ingest.store.signing import strict_loads
from pipelines.video.motion_config import MotionConfig

if TYPE_CHECKING:
    from ev_ingest.store import Retention

CONFIG_ENV = "EV_CONFIG"
LockMode = Literal["GOVERNANCE", "COMPLIANCE"]


class ConfigError(ValueError):
    """The configuration file is missing or invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A site or server name is a segment of every object key (`ev_ingest.store.keys.safe_part`),
# so it must be one already: a name safe_part would change ("HQ." -> "HQ") would archive
# under another name's keys. No leading or trailing "." or "_", no "..".
# (tests/test_config_identity.py checks that safe_part leaves every name this accepts alone.)
NAME_PATTERN = r"^[A-Za-z0-9._-]+$"


def _key_safe(value: str) -> str:
    if value != value.strip("._") or ".." in value:
        raise ValueError(
            f"{value!r} may not begin or end with '.' or '_' nor hold '..': object keys would change it "
            "and it could become another name"
        )
    return value


class ServerConfig(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    _safe_name = field_validator("name")(_key_safe)
    url: str | None = Field(None, description="exacqvision://user@host:port/?server_id=0 (no password)")
    username: str | None = None
    password_env: str = Field("EV_PASSWORD", description="environment variable holding the password")
    airflow_conn_id: str | None = Field(None, description="Airflow connection (conn type exacqvision)")
    include_cameras: list[int] | None = Field(None, description="only these camera ids (default: all)")
    exclude_cameras: list[int] = Field(default_factory=list)
    max_concurrent_exports: int = Field(2, ge=1, le=16)

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value and "@" in value and ":" in value.split("://", 1)[-1].split("@", 1)[0]:
            raise ValueError("put the password in the environment (password_env), not in the URL")
        return value

    @model_validator(mode="after")
    def _one_say_per_camera(self) -> ServerConfig:
        both = sorted(set(self.include_cameras or []) & set(self.exclude_cameras))
        if both:  # which wins would decide silently whether the camera is archived
            raise ValueError(f"cameras {both} are both included and excluded")
        return self

    def wants(self, camera_id: int) -> bool:
        if self.include_cameras is not None and camera_id not in self.include_cameras:
            return False
        return camera_id not in self.exclude_cameras


class SiteConfig(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    _safe_name = field_validator("name")(_key_safe)
    timezone: str = "UTC"
    servers: list[ServerConfig] = Field(min_length=1)

    @field_validator("servers")
    @classmethod
    def _unique_servers(cls, value: list[ServerConfig]) -> list[ServerConfig]:
        # Two servers of one name would share every export key: one's video would stand for the other's.
        _refuse_repeats("server", [s.name for s in value])
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Paris)") from None
        return value

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def local_day(self, day: date) -> tuple[datetime, datetime]:
        """The site's local calendar day `day` (a date, or a datetime whose date is taken), as a
        UTC interval. Built from local noon: `day` at noon UTC is already the next local day
        east of UTC+12 (Auckland in summer, Kiritimati), which once archived the wrong day."""
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=self.zone)
        return self.previous_day(noon + timedelta(days=1))

    def previous_day(self, moment: datetime) -> tuple[datetime, datetime]:
        """The local calendar day before `moment`, as a UTC interval of plain datetimes.

        `moment` may be a pendulum DateTime (a scheduled Airflow run's `data_interval_end`):
        it is turned into a stdlib datetime first, because pendulum arithmetic on a value
        carrying a stdlib tzinfo returns naive datetimes (the scheduled run's TypeError)."""
        if moment.tzinfo is None:
            raise ValueError(f"{moment!r} has no time zone")
        moment = datetime.fromtimestamp(moment.timestamp(), UTC)
        local = moment.astimezone(self.zone)
        end = local.replace(hour=0, minute=0, second=0, microsecond=0)
        start = (end - timedelta(days=1)).replace(tzinfo=None).replace(tzinfo=self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)


class ExportSettings(_Strict):
    format: Literal["mp4", "ps_zip"] = "mp4"
    chunk_minutes: int = Field(60, ge=1, le=1440, description="one export per camera and chunk")
    wait_timeout_s: float = Field(3600, gt=0)
    poll_interval_s: float = Field(2.0, gt=0, le=60)
    first_poll_s: float = Field(
        5.0, ge=0, le=300, description="Airflow: an export's wait stays deferred at least this long (see triggers.py)"
    )
    max_clock_skew_s: float = Field(300, gt=0, description="server/worker clock difference tolerated silently")
    settle_s: float = Field(
        300, ge=0, le=86400, description="a chunk is exported only this long after it ended on the server's clock"
    )
    spool_dir: str | None = Field(None, description="where exports are spooled before upload (default: TMPDIR)")


class HorizonSettings(_Strict):
    """Staying ahead of the recorder, which overwrites its oldest video when its disk fills."""

    # The bounds keep the planner's search (night + margin + a day, up to the server's now,
    # for a night as old as the lookback) within the 31 days a server answers in one search.
    margin_hours: float = Field(
        24,
        ge=1,
        le=24 * 7,
        description="alert when unarchived footage is within this many hours of being overwritten; the planner "
        "searches this far (and a day more) before each night, to see where the recorder's video begins",
    )
    lookback_days: int = Field(
        7, ge=1, le=21, description="how far back `archive --catch-up` goes for owed nights (the view shows all)"
    )


class StoreConfig(_Strict):
    bucket: str = Field("ev-archive", min_length=3, max_length=63)
    endpoint_url: str | None = None
    region: str = "us-east-1"


class RetentionRule(_Strict):
    days: int | None = Field(None, ge=1, le=36500)
    mode: LockMode | None = None


class RetentionPolicy(_Strict):
    mode: LockMode = "GOVERNANCE"
    days: int = Field(30, ge=1, le=36500)
    sites: dict[str, RetentionRule] = Field(default_factory=dict)
    servers: dict[str, RetentionRule] = Field(
        default_factory=dict, description='keyed by "site/server" (or a server name found in one site only)'
    )
    cameras: dict[str, RetentionRule] = Field(
        default_factory=dict,
        description='keyed by "site/server/camera_id", "server/camera_id" (a server name found in one site '
        "only), or a bare camera id: that id on every server",
    )
    rehash_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="the daily audit re-hashes a rotating sample: every archived object once in this many days",
    )
    checkpoint_file: Path | None = Field(
        None,
        description="the audit's signed checkpoint is written here, outside the bucket; the next audit checks it",
    )

    @field_validator("cameras")
    @classmethod
    def _camera_keys(cls, value: dict[str, RetentionRule]) -> dict[str, RetentionRule]:
        for key in value:
            parts = key.split("/")
            if len(parts) > 3 or not parts[-1].isdigit() or not all(parts[:-1]):
                raise ValueError(
                    f"camera rule {key!r}: use 'site/server/camera_id', 'server/camera_id' or a bare camera id"
                )
        return value

    def check_names(self, sites: dict[str, list[str]]) -> None:
        """Every rule names a configured site and server; a rule by bare server name is refused
        where two sites have a server of that name (it would reach both: say 'site/server')."""
        where: dict[str, list[str]] = {}
        for site, servers in sites.items():
            for server in servers:
                where.setdefault(server, []).append(site)
        for site in self.sites:
            if site not in sites:
                raise ValueError(f"retention.sites: no site {site!r} in the configuration")
        scoped = [(f"retention.servers {key!r}", key) for key in self.servers]
        scoped += [(f"retention.cameras {key!r}", key.rpartition("/")[0]) for key in self.cameras if "/" in key]
        for label, name in scoped:
            site, _, server = name.rpartition("/")
            if site and server not in sites.get(site, []):
                raise ValueError(f"{label}: no server {server!r} in site {site!r}")
            if not site and server not in where:
                raise ValueError(f"{label}: no server {server!r} in the configuration")
            if not site and len(where[server]) > 1:
                raise ValueError(
                    f"{label}: sites {', '.join(where[server])} each have a server {server!r}: "
                    f"name the site ('{where[server][0]}/{server}...')"
                )

    def rule_for(self, site: str, server: str | None, camera_id: int | None) -> tuple[LockMode, int]:
        """The most specific rule wins: site/server/camera, server/camera, camera,
        site/server, server, site, then the default."""
        mode, days = self.mode, self.days
        rules = [self.sites.get(site)]
        if server:
            rules += [self.servers.get(server), self.servers.get(f"{site}/{server}")]
        if camera_id is not None:
            rules.append(self.cameras.get(str(camera_id)))
            if server:
                rules += [self.cameras.get(f"{server}/{camera_id}"), self.cameras.get(f"{site}/{server}/{camera_id}")]
        for rule in rules:
            if rule is not None:
                mode, days = rule.mode or mode, rule.days or days
        return mode, days

    def until(
        self, site: str, server: str | None, camera_id: int | None, recorded_end: datetime
    ) -> tuple[LockMode, datetime]:
        mode, days = self.rule_for(site, server, camera_id)
        return mode, (recorded_end + timedelta(days=days)).replace(microsecond=0)

    def lock(self, site: str, server: str | None, camera_id: int | None, recorded_end: datetime) -> Retention | None:
        """The lock an object needs; None once its retention has already run out (archiving
        old video: S3 refuses a retain-until date in the past)."""
        from ev_ingest.store import Retention  # boto3 behind it: not at import (CLI start-up)

        mode, until = self.until(site, server, camera_id, recorded_end)
        return Retention(mode, until) if until > clock.now() + timedelta(minutes=1) else None

    def longest(self, site: str) -> int:
        """The longest retention any object of the site can get (manifests are kept that long)."""
        rules = [self.sites.get(site), *self.servers.values(), *self.cameras.values()]
        return max([self.days, *(r.days for r in rules if r is not None and r.days)])


class ThumbnailSettings(_Strict):
    interval_s: int = Field(900, ge=10, le=86400, description="one thumbnail per this many seconds")
    width: int = Field(320, ge=32, le=1920)
    sheet_columns: int = Field(8, ge=1, le=32)


class SigningSettings(_Strict):
    """Where the key that signs manifests and audit records comes from (never the store)."""

    key_file: Path | None = Field(
        None, description="Ed25519 PEM private key, mode 0600 (default: $EV_SIGNING_KEY_FILE)"
    )
    public_keys: list[Path] = Field(
        default_factory=list, description="further trusted public keys (PEM), e.g. the keys used before a rotation"
    )
    fingerprint: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="the expected signing key's whole fingerprint (`ev-ingest keys show`): any other key is refused",
    )


class CameraMotion(_Strict):
    """One camera's motion settings over the defaults (`motion`): zones, masks, sensitivity."""

    region: tuple[float, float, float, float] | None = Field(None, description="x0,y0,x1,y1 (0..1): only look here")
    masks: list[tuple[float, float, float, float]] = Field(
        default_factory=list, description="x0,y0,x1,y1 (0..1) never looked at: an on-screen clock, a tree"
    )
    pixel_threshold: int | None = Field(None, ge=2, le=254)
    min_region: float | None = Field(None, ge=0, le=1)


class PipelineConfig(_Strict):
    sites: list[SiteConfig] = Field(min_length=1)
    export: ExportSettings = Field(default_factory=ExportSettings)
    store: StoreConfig = Field(default_factory=StoreConfig)
    horizon: HorizonSettings = Field(default_factory=HorizonSettings)
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    motion_mode: Literal["full", "gated", "keyframe"] = "gated"
    motion_workers: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "workers of one export's motion analysis: GOP decode threads for an MP4, processes for a"
            " ps_zip's clips (1 where a worker runs several tasks at once)"
        ),
    )
    motion_cameras: dict[str, CameraMotion] = Field(
        default_factory=dict, description='per camera, "server/camera" or a bare camera id (every server)'
    )
    motion_snapshots: int = Field(
        20, ge=0, le=10_000, description="JPEGs stored per export, of its strongest motion events (0: none)"
    )
    thumbnails: ThumbnailSettings = Field(default_factory=ThumbnailSettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)

    @model_validator(mode="after")
    def _identities(self) -> PipelineConfig:
        _refuse_repeats("site", [s.name for s in self.sites])
        self.retention.check_names({s.name: [v.name for v in s.servers] for s in self.sites})
        return self

    def site(self, name: str) -> SiteConfig:
        for site in self.sites:
            if site.name == name:
                return site
        raise ConfigError(f"no site {name!r} in the configuration (sites: {[s.name for s in self.sites]})")

    def motion_for(self, server: str, camera_id: int) -> MotionConfig:
        """The motion settings of one camera: its own (server/camera, then bare id) over the defaults."""
        own = self.motion_cameras.get(f"{server}/{camera_id}") or self.motion_cameras.get(str(camera_id))
        if own is None:
            return self.motion
        changes = own.model_dump(exclude_none=True, exclude_defaults=True)
        if "masks" in changes:
            changes["masks"] = tuple(tuple(m) for m in changes["masks"])
        return MotionConfig.model_validate({**self.motion.model_dump(), **changes})

    def server(self, site: str, name: str) -> ServerConfig:
        for server in self.site(site).servers:
            if server.name == name:
                return server
        raise ConfigError(f"no server {name!r} in site {site!r}")


def _refuse_repeats(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"two {what}s are named {name!r}: {what} names must be unique")
        seen.add(name)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML whose mappings refuse a key given twice (PyYAML keeps the last one silently)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    for index, key in enumerate(keys):
        if key in keys[:index]:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is given twice", node.value[index][0].start_mark
            )
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def parse_text(text: str, json_format: bool) -> object:
    """The document in `text`; a key given twice in one mapping is an error (never the last wins)."""
    if json_format:
        return strict_loads(text)
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def load_config(path: str | os.PathLike[str] | None = None) -> PipelineConfig:
    """Read and validate the configuration (default: $EV_CONFIG)."""
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError(f"no configuration: pass a path or set {CONFIG_ENV}")
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc.strerror}") from None
    try:
        data = parse_text(text, path.suffix == ".json")
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {' '.join(str(exc).split())}"
        ) from None
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"{path}: invalid configuration: {problems}") from None
