"""Typed answers of the exacqVision API.

Models are tolerant (`extra="allow"`): fields we do not know are kept, so a newer
server never breaks the client and nothing the server said is lost. Times are parsed
to timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def parse_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class LoginResult(_Tolerant):
    success: bool = False
    session_id: str | None = Field(None, alias="sessionId")
    name: str | None = None
    serial: str | None = None
    version: str | None = None
    group: dict[str, Any] = Field(default_factory=dict)
    user_permissions: dict[str, Any] = Field(default_factory=dict)

    def __repr__(self) -> str:  # the session id is a credential
        return f"LoginResult(success={self.success}, name={self.name!r}, serial={self.serial!r})"

    __str__ = __repr__


class ServerInfo(_Tolerant):
    id: str = "0"
    name: str | None = None
    address: str | None = None
    serial: str | None = None
    version: str | None = None
    model: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _str_id(cls, value: Any) -> str:
        return str(value)


class SystemInfo(_Tolerant):
    system_name: str | None = Field(None, alias="systemName")
    serial_number: str | None = Field(None, alias="serialNumber")
    os: str | None = None
    version: str | None = None


class Resolution(_Tolerant):
    width: int = 0
    height: int = 0


class Camera(_Tolerant):
    id: int
    name: str = ""
    state: int = 0
    disabled: int = 0
    resolution: Resolution = Field(default_factory=Resolution)
    frame_rate: float | None = Field(None, alias="frameRate")
    formats: list[int] = Field(default_factory=list)

    @property
    def operating(self) -> bool:
        return self.state == 0 and not self.disabled


class CameraList(_Tolerant):
    name: str | None = None
    timezone: float = 0.0  # hours east of UTC
    cameras: list[Camera] = Field(default_factory=list, alias="Cameras")


class Clip(_Tolerant):
    start: datetime = Field(alias="startTime")
    end: datetime = Field(alias="endTime")

    _utc = field_validator("start", "end", mode="before")(parse_utc)

    @model_validator(mode="after")
    def _ordered(self) -> Clip:
        if self.end < self.start:
            raise ValueError(f"a clip ends ({self.end}) before it starts ({self.start})")
        return self

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


class SearchResult(_Tolerant):
    """A recorded-video search (`videoInfo[].clips`, confirmed by ExacqMan). `search_id` is
    absent when nothing was recorded.

    A successful answer with no search keys at all (`{"success": true}`, `{}`) or a
    `videoInfo` of empty entries (`[{}]`) is "no footage": a real server answers so for a
    window without video (ExacqMan 8746a95; `exacq-api-evidence.md` 2.4), the common case
    for a motion-triggered camera (`no_footage` says so, for the caller to log). Strict
    elsewhere: `success: false`, a non-object, other keys and no search key, `videoInfo` of
    another shape, or a search id or frame count with no clips is an error, never "nothing
    recorded"."""

    search_id: str | None = None
    frames: int = 0
    video_info: list[dict[str, Any]] = Field(default_factory=list, alias="videoInfo")
    clips: list[Clip] = Field(default_factory=list, exclude=True)
    no_footage: bool = Field(False, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("success", True) is not True:
            raise ValueError("not a successful search answer")
        if not {"search_id", "videoInfo", "frames"} & data.keys() and data.keys() - {"success"}:
            # Keys of something else (a metadata answer's `cameras`): not "no footage".
            raise ValueError("not a search answer (none of search_id, frames, videoInfo)")
        info = data.get("videoInfo") or []
        shaped = isinstance(info, list) and all(
            i == {} or (isinstance(i, dict) and isinstance(i.get("clips"), list)) for i in info
        )
        if not shaped:
            raise ValueError("videoInfo is not a list of {clips: [...]}")
        clips = [c for i in info for c in i.get("clips", [])]
        if (data.get("search_id") or data.get("frames")) and not clips:
            raise ValueError("a search id or frames but no clips in videoInfo")
        return {**data, "clips": clips, "no_footage": not clips}


class MetadataSearch(_Tolerant):
    success: bool = True
    cameras: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def clips(self, camera_id: int) -> list[Clip]:
        """The camera's clips; an error when the answer does not name it or has no clip list."""
        entry = self.cameras.get(str(camera_id))
        if not isinstance(entry, dict) or not isinstance(entry.get("clips"), list):
            raise ValueError(f"the metadata search answer has no clip list for camera {camera_id}")
        return [Clip.model_validate(c) for c in entry["clips"]]

    def __repr__(self) -> str:
        return f"MetadataSearch(cameras={sorted(self.cameras)})"


class ThumbnailSearch(_Tolerant):
    session_id: str | None = None
    frames: int = 0
    frames_timestamps: list[datetime] = Field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None

    _utc = field_validator("start", "end", mode="before")(parse_utc)

    @field_validator("frames_timestamps", mode="before")
    @classmethod
    def _stamps(cls, value: Any) -> list[datetime]:
        return [parse_utc(v) for v in value or []]

    def __repr__(self) -> str:
        return f"ThumbnailSearch(frames={self.frames}, start={self.start}, end={self.end})"


class SearchStatus(_Tolerant):
    success: bool = True
    status: dict[str, Any] = Field(default_factory=dict)


class ExportFormat(_Tolerant):
    name: str
    description: str | None = None


class ExportProgress(_Tolerant):
    progress: int = 0

    @field_validator("progress", mode="before")
    @classmethod
    def _number(cls, value: Any) -> int:  # some servers answer "57", others 57
        return int(float(value))


class ActiveEvent(_Tolerant):
    type: int
    source: int | str | None = None
    start: datetime | None = None

    _utc = field_validator("start", mode="before")(parse_utc)


class Status(_Tolerant):
    success: bool = True
    camera: list[dict[str, Any]] = Field(default_factory=list)
    trigger: list[dict[str, Any]] = Field(default_factory=list)
    map: list[dict[str, Any]] = Field(default_factory=list)


class Bookmark(_Tolerant):
    """A bookmark. The seed's create takes a flat `itemType`/`itemId` (0 = camera); an
    `items: [{type, id}]` list is read too, as some answer shapes may nest them."""

    guid: str
    name: str = ""
    description: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    case: str | None = None
    item_type: int | None = Field(None, alias="itemType")
    item_id: int | None = Field(None, alias="itemId")
    items: list[dict[str, Any]] = Field(default_factory=list)

    _utc = field_validator("start", "end", mode="before")(parse_utc)

    @property
    def camera_ids(self) -> list[int]:
        """The camera ids it names, on whichever server (see `cameras`)."""
        return sorted({camera for _, camera in self.cameras("")})

    def cameras(self, listed_on: str) -> list[tuple[str, int]]:
        """(server, camera id) of each camera it covers: an item's `server` (GUESS: no
        public client shows a cross-server item), else `listed_on`, the server that lists
        the bookmark. A ValueError when it names no camera we can recognise (a hold that
        silently covers nothing is the failure this prevents)."""
        found = [
            (str(i.get("server") or listed_on), int(i["id"]))
            for i in self.items
            if isinstance(i, dict) and "id" in i and int(i.get("type", 0)) == 0
        ]
        if self.item_id is not None and (self.item_type or 0) == 0:
            found.append((listed_on, int(self.item_id)))
        if not found:
            raise ValueError(
                f"bookmark {self.name!r} ({self.guid}) names no camera in a shape this client knows "
                "(itemType 0 with itemId, or items[{type: 0, id, server?}])"
            )
        return sorted(set(found))


class Case(_Tolerant):
    """A case. The seed's Update Case takes name and description only: a case has no status
    a client could read, so it holds its bookmarks' video for as long as it exists."""

    guid: str
    name: str = ""
    description: str | None = None


@dataclass(frozen=True)
class NativeFrame:
    """One frame of a camera's native stream, with the headers exacqVision sends beside it."""

    content_type: str
    data: bytes
    iframe: bool
    frame: int | None
    time_offset_ms: int | None


@dataclass(frozen=True)
class DownloadResult:
    """What a finished download wrote: verified size and SHA-256 (None when not asked for)."""

    filename: str
    size: int
    sha256: str | None
    content_type: str | None
    resumed: int  # how many times a dropped connection was resumed or restarted
