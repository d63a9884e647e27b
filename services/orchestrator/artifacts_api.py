"""GET /v1/tasks/{id}/artifacts/{n}: a file a task stored, as a download (the console's artifact links)."""

from __future__ import annotations

import logging

from aiohttp import web
from nats.js.errors import NotFoundError, ObjectNotFoundError

from maestro import operations, topics
from maestro.access.grants import Caller
from maestro.access.http_auth import Gate, forbidden
from maestro.bus import Bus
from maestro.http import error, route
from services.orchestrator.bodies import task_id_of
from services.orchestrator.store import TaskStore

log = logging.getLogger(__name__)


def artifact_routes(bus: Bus, store: TaskStore, gate: Gate) -> list[web.RouteDef]:
    """GET /v1/tasks/{id}/artifacts/{n} behind the token gate."""

    async def download(request: web.Request, caller: Caller) -> web.StreamResponse:
        task_id = task_id_of(request)
        if isinstance(task_id, web.Response):
            return task_id
        place = request.match_info["n"]
        if not (place.isascii() and place.isdigit() and len(place) <= 4):
            return error(
                400, f"n is an artifact's place in the record (0, 1, ...), not {place[:16]!r}", field="n"
            )
        record = await store.record(task_id)
        if record is None or not caller.sees(record.tenant):
            return error(404, f"no task {task_id}")
        if not caller.may("read", record.tenant):
            return forbidden(caller, "read", record.tenant)
        if int(place) >= len(record.artifacts):
            return error(404, f"task {task_id} has {len(record.artifacts)} artifacts; no artifact {place}")
        name = record.artifacts[int(place)].name
        try:
            found = await (await bus.js.object_store(topics.STORE_ARTIFACTS)).get(name)
        except (ObjectNotFoundError, NotFoundError):
            return error(404, f"artifact {place} of task {task_id} is no longer stored")
        filename = name.rsplit("/", 1)[-1].replace('"', "")
        return web.Response(
            body=found.data or b"",
            content_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    return [route(operations.GET_TASK_ARTIFACT, gate.guarded(download))]
