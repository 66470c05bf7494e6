"""Bookmarks and cases: list, create, update, delete.

Compliance workflows use them as legal holds: video of a camera and interval that a
bookmark in an existing case covers must not expire (see `pipelines.compliance.holds`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ev_ingest.client import paths
from ev_ingest.client._base import Call, check_range
from ev_ingest.client.models import Bookmark, Case


class _CrudCalls:
    path = ""
    singular = ""
    model: Any = None

    def __init__(self, client: Any) -> None:
        self._client = client

    def _list(self) -> Call[list[Any]]:
        key = f"{self.singular}s"
        return Call(
            "GET",
            self.path,
            parse=lambda b: [self.model.model_validate(i) for i in b.get(key, [])],
            what=f"{self.singular} list",
        )

    def _write(self, method: str, params: dict[str, Any]) -> Call[Any]:
        # Creates are not idempotent (a replay makes a duplicate); updates are.
        return Call(
            method,
            self.path,
            params,
            idempotent=method != "POST",
            parse=lambda b: self.model.model_validate(b[self.singular]),
            what=self.singular,
        )

    def _delete(self, guid: str) -> Call[None]:
        return Call("DELETE", self.path, {"guid": guid}, expect="none", what=f"{self.singular} {guid}")


class _BookmarkCalls(_CrudCalls):
    path, singular, model = paths.BOOKMARKS, "bookmark", Bookmark

    def _create(
        self, name: str, camera_id: int, start: datetime, end: datetime, description: str | None, case: str | None
    ) -> Call[Bookmark]:
        check_range(start, end)
        return self._write(
            "POST",
            {
                "name": name,
                "start": start,
                "end": end,
                "itemType": 0,
                "itemId": int(camera_id),
                "description": description,
                "case": case,
            },
        )


class _CaseCalls(_CrudCalls):
    path, singular, model = paths.CASES, "case", Case


class Bookmarks(_BookmarkCalls):
    def list(self) -> list[Bookmark]:
        return self._client.call(self._list())

    def create(
        self,
        name: str,
        camera_id: int,
        start: datetime,
        end: datetime,
        *,
        description: str | None = None,
        case: str | None = None,
    ) -> Bookmark:
        return self._client.call(self._create(name, camera_id, start, end, description, case))

    def update(self, guid: str, **changes: Any) -> Bookmark:
        """Change name, description, start, end or case."""
        return self._client.call(self._write("PUT", {"guid": guid, **changes}))

    def delete(self, guid: str) -> None:
        self._client.call(self._delete(guid))


class AsyncBookmarks(_BookmarkCalls):
    async def list(self) -> list[Bookmark]:
        return await self._client.call(self._list())

    async def create(
        self,
        name: str,
        camera_id: int,
        start: datetime,
        end: datetime,
        *,
        description: str | None = None,
        case: str | None = None,
    ) -> Bookmark:
        return await self._client.call(self._create(name, camera_id, start, end, description, case))

    async def update(self, guid: str, **changes: Any) -> Bookmark:
        return await self._client.call(self._write("PUT", {"guid": guid, **changes}))

    async def delete(self, guid: str) -> None:
        await self._client.call(self._delete(guid))


class Cases(_CaseCalls):
    def list(self) -> list[Case]:
        return self._client.call(self._list())

    def create(self, name: str, description: str | None = None) -> Case:
        return self._client.call(self._write("POST", {"name": name, "description": description}))

    def update(self, guid: str, *, name: str | None = None, description: str | None = None) -> Case:
        """Change name or description (all the seed's Update Case takes). Deleting the case
        is what ends its legal holds."""
        return self._client.call(self._write("PUT", {"guid": guid, "name": name, "description": description}))

    def delete(self, guid: str) -> None:
        self._client.call(self._delete(guid))


class AsyncCases(_CaseCalls):
    async def list(self) -> list[Case]:
        return await self._client.call(self._list())

    async def create(self, name: str, description: str | None = None) -> Case:
        return await self._client.call(self._write("POST", {"name": name, "description": description}))

    async def update(self, guid: str, *, name: str | None = None, description: str | None = None) -> Case:
        return await self._client.call(self._write("PUT", {"guid": guid, "name": name, "description": description}))

    async def delete(self, guid: str) -> None:
        await self._client.call(self._delete(guid))
