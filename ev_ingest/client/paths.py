"""Every path the client sends, in one table (relative to the API prefix, `/v1` by default),
each with the evidence behind it (`shared/exacq-api-evidence.md`):

- CONFIRMED: a public production client sends it to real servers and parses the answer
  (ExacqMan; CamerasIA copied ExacqMan's list, so this is one client plus the seed).
- OBSERVED: one public client sends it (the vendor-family Android apps, or a probe that
  does not read the answer).
- SEED: only the seed documentation names it; no public caller was found.
- GUESS: nobody shows it; our best guess, served alike by the simulator's `full` profile and
  refused by its `strict` one. The one place to change when a real server differs.

The docs' path table (docs/client.md) is generated from `TABLE` (a test keeps the two equal).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Evidence = Literal["CONFIRMED", "OBSERVED", "SEED", "GUESS"]


class ApiPath(NamedTuple):
    path: str
    evidence: Evidence
    use: str


LOGIN = "/login.web"
LOGOUT = "/logout.web"
CONFIG = "/config.web"
SEARCH = "/search.web"
SEARCH_STATUS = "/search.web/status"
METADATA_SEARCH = "/search.web/metadata"
THUMBNAIL_SEARCH = "/search.web/thumbnails"
FRAME_AT_TIME = "/search.web/frame"
RECORDED_FRAME = "/frame.web"
TIMESTAMP = "/timestamp.web"
PLAYSPEED = "/playspeed.web"
STEP = "/step.web"
VIDEO = "/video.web"
THUMBNAIL_PREVIEW = "/video.web/thumbnail"
EXPORT = "/export.web"
SYSTEM = "/system.web"
EVENTS = "/events.web"
STATUS = "/status.web"
BOOKMARKS = "/bookmarks.web"
CASES = "/cases.web"

TABLE: tuple[ApiPath, ...] = (
    ApiPath("POST " + LOGIN, "CONFIRMED", "log in: form u, p, s (server id), responseVersion=2 -> sessionId"),
    ApiPath("GET " + LOGIN + "?output=json", "OBSERVED", "list servers (seen only as a probe; shape from the seed)"),
    ApiPath("POST " + LOGOUT + "?s=", "CONFIRMED", "log out (answers 302 to the login page)"),
    ApiPath("GET " + LOGOUT + "?search_id=", "OBSERVED", "close a search (302 accepted)"),
    ApiPath("GET " + CONFIG + "?output=json", "CONFIRMED", "cameras: Cameras[].id, state, disabled, formats"),
    ApiPath("GET " + CONFIG + "?camera=", "GUESS", "one camera's configuration"),
    ApiPath("GET " + SEARCH, "CONFIRMED", "recorded clips of one camera (videoInfo[].clips): what the planner uses"),
    ApiPath("GET " + SEARCH_STATUS, "SEED", "search status"),
    ApiPath("GET " + METADATA_SEARCH, "GUESS", "metadata search (path and cameras{id:{clips}} shape)"),
    ApiPath("GET " + THUMBNAIL_SEARCH, "GUESS", "thumbnail search; &frame=N returns one JPEG"),
    ApiPath("GET " + FRAME_AT_TIME, "GUESS", "frame of a search at a time"),
    ApiPath("GET " + RECORDED_FRAME, "GUESS", "single recorded frame"),
    ApiPath("GET " + TIMESTAMP + "?search_id=", "OBSERVED", "a search's reference time"),
    ApiPath("GET " + PLAYSPEED + "?search_id=", "OBSERVED", "a search's playspeed"),
    ApiPath("GET " + PLAYSPEED + "/{speed}", "SEED", "set the playspeed"),
    ApiPath("GET " + STEP + "?search_id=", "OBSERVED", "step one frame"),
    ApiPath("GET " + STEP + "/{steps}", "SEED", "step several frames (or back)"),
    ApiPath("GET " + VIDEO + "?format=6", "OBSERVED", "live or playback JPEG"),
    ApiPath("GET " + VIDEO + "?multipart_encode=1", "OBSERVED", "native stream (format from the camera's formats)"),
    ApiPath("GET " + THUMBNAIL_PREVIEW + "?size=0", "OBSERVED", "thumbnail preview: the camera health check"),
    ApiPath("GET " + EXPORT + "?camera=", "CONFIRMED", "create an export -> export_id"),
    ApiPath("GET " + EXPORT + "?export=", "CONFIRMED", "export progress; &action=download, &action=finish"),
    ApiPath("GET " + EXPORT, "SEED", "export formats"),
    ApiPath("GET " + SYSTEM, "GUESS", "system info (the seed's server operations sit under server.web/)"),
    ApiPath("GET " + EVENTS, "GUESS", "active events"),
    ApiPath("GET " + STATUS, "SEED", "camera status"),
    ApiPath(BOOKMARKS, "GUESS", "bookmarks: GET, POST (itemType, itemId), PUT, DELETE"),
    ApiPath(CASES, "GUESS", "cases: GET, POST, PUT (name, description only), DELETE"),
)


def markdown_table() -> str:
    """The docs' path table (docs/client.md)."""
    rows = ["| request | evidence | what for |", "| --- | --- | --- |"]
    rows += [f"| `{p.path}` | {p.evidence} | {p.use} |" for p in TABLE]
    return "\n".join(rows)
