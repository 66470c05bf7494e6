"""Every path the client sends, in one table (relative to the API prefix, `/v1` by default).

CONFIRMED paths are sent by public production clients of real servers (DESIGN.md). The
seed documentation lost the rest; those marked GUESS are our documented best guesses,
served identically by the simulator, and the one place to change if a real server
differs.
"""

LOGIN = "/login.web"  # CONFIRMED: POST form u, p, s, responseVersion=2; GET ?output=json lists servers
LOGOUT = "/logout.web"  # CONFIRMED: ?s=session; ?search_id= closes a search
CONFIG = "/config.web"  # CONFIRMED: cameras (?output=json); GUESS: ?camera= for one camera's config
SEARCH = "/search.web"  # CONFIRMED
SEARCH_STATUS = "/search.web/status"  # named in the seed
METADATA_SEARCH = "/search.web/metadata"  # GUESS
THUMBNAIL_SEARCH = "/search.web/thumbnails"  # GUESS; `frame=N` on the same query returns the JPEG
FRAME_AT_TIME = "/search.web/frame"  # GUESS
RECORDED_FRAME = "/frame.web"  # GUESS
TIMESTAMP = "/timestamp.web"  # OBSERVED (mobile app)
PLAYSPEED = "/playspeed.web"  # OBSERVED; set: /playspeed.web/{speed} (seed)
STEP = "/step.web"  # OBSERVED; /step.web/{steps} (seed)
VIDEO = "/video.web"  # OBSERVED
EXPORT = "/export.web"  # CONFIRMED
SYSTEM = "/system.web"  # GUESS
EVENTS = "/events.web"  # GUESS
STATUS = "/status.web"  # named in the seed
BOOKMARKS = "/bookmarks.web"  # GUESS: GET list, POST create, PUT update, DELETE delete
CASES = "/cases.web"  # GUESS: as bookmarks
