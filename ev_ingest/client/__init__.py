"""ev_ingest.client: a typed, resilient exacqVision Web Service client, sync and async.

>>> from ev_ingest.client import ExacqClient
>>> with ExacqClient("http://127.0.0.1:8780", "admin", "admin256") as ev:
...     cameras = ev.cameras.list()
"""

from ev_ingest.client._base import Call
from ev_ingest.client._client import AsyncExacqClient, ExacqClient
from ev_ingest.client._config import ClientSettings, redact
from ev_ingest.client._exceptions import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    DownloadError,
    ExacqError,
    ExportError,
    ExportFailedError,
    ExportTimeoutError,
    NotExacqVisionError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RequestTimeout,
    ServerError,
    SessionExpiredError,
    TransportError,
)
from ev_ingest.client.events import EventType
from ev_ingest.client.models import (
    ActiveEvent,
    Bookmark,
    Camera,
    CameraList,
    Case,
    Clip,
    DownloadResult,
    ExportFormat,
    LoginResult,
    MetadataSearch,
    NativeFrame,
    SearchResult,
    ServerInfo,
    Status,
    SystemInfo,
    ThumbnailSearch,
)

__all__ = [
    "ActiveEvent",
    "ApiError",
    "AsyncExacqClient",
    "AuthenticationError",
    "BadRequestError",
    "Bookmark",
    "Call",
    "Camera",
    "CameraList",
    "Case",
    "ClientSettings",
    "Clip",
    "ConfigurationError",
    "DownloadError",
    "DownloadResult",
    "EventType",
    "ExacqClient",
    "ExacqError",
    "ExportError",
    "ExportFailedError",
    "ExportFormat",
    "ExportTimeoutError",
    "LoginResult",
    "MetadataSearch",
    "NativeFrame",
    "NotExacqVisionError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolError",
    "RequestTimeout",
    "SearchResult",
    "ServerError",
    "ServerInfo",
    "SessionExpiredError",
    "Status",
    "SystemInfo",
    "ThumbnailSearch",
    "TransportError",
    "redact",
]
