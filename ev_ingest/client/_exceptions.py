"""Errors raised by the exacqVision client.

Lower-level failures (httpx transport errors, HTTP statuses, bodies that are not what
exacqVision sends) are translated into these at one boundary (`_base.translate`)::

    ExacqError
    ├── ConfigurationError        bad URL, missing credentials, bad option
    ├── TransportError            could not talk to the server (after retries)
    │   └── RequestTimeout        connect/read/write/pool timeout
    ├── ProtocolError             the answer is not what exacqVision sends (HTML, bad JSON)
    │   └── NotExacqVisionError   the URL does not serve the exacqVision Web Service
    ├── AuthenticationError       wrong user name or password
    ├── SessionExpiredError       the session expired and logging in again did not help
    ├── ApiError                  the server refused the request (carries status, message)
    │   ├── BadRequestError       400: bad parameters, inverted or huge time range
    │   ├── PermissionDeniedError 401/403 after a fresh login
    │   ├── NotFoundError         404: unknown camera, search or export; nothing recorded
    │   └── ServerError           5xx after the retries ran out
    └── ExportError               an export did not produce a complete file
        ├── ExportFailedError     the server failed or lost the export
        ├── ExportTimeoutError    it did not finish within the wait timeout
        └── DownloadError         the download stopped short or did not match its length

Every error carries the request's method and a redacted URL (`s`, `p`, `search_id` and
passwords are replaced by `***`), never a secret, and pickles (Airflow moves errors
between processes).
"""

from __future__ import annotations


class ExacqError(Exception):
    """Base class of every error raised by ev_ingest.client."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url

    def __reduce__(self):  # keyword-only arguments need help to pickle
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))

    def __str__(self) -> str:
        if self.method and self.url:
            return f"{self.message} ({self.method} {self.url})"
        return self.message


def _rebuild(cls: type[ExacqError], message: str, state: dict) -> ExacqError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigurationError(ExacqError, ValueError):
    pass


class TransportError(ExacqError):
    pass


class RequestTimeout(TransportError):
    pass


class ProtocolError(ExacqError):
    pass


class NotExacqVisionError(ProtocolError):
    pass


class AuthenticationError(ExacqError):
    pass


class SessionExpiredError(ExacqError):
    pass


class ApiError(ExacqError):
    def __init__(
        self, message: str, *, status: int | None = None, method: str | None = None, url: str | None = None
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status = status


class BadRequestError(ApiError, ValueError):
    pass


class PermissionDeniedError(ApiError):
    pass


class NotFoundError(ApiError):
    pass


class ServerError(ApiError):
    pass


class ExportError(ExacqError):
    pass


class ExportFailedError(ExportError):
    pass


class ExportTimeoutError(ExportError):
    pass


class DownloadError(ExportError):
    pass
