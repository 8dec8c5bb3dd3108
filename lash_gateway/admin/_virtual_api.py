"""The admin API's virtual servers and audit log (mounted by `AdminApi`, behind its token and loopback checks).

    GET    /admin/virtual-servers                         every virtual server (token ids, never tokens)
    GET    /admin/virtual-servers/{name}                  one, with the tools its clients see
    PUT    /admin/virtual-servers/{name}                  make or change one (201 with a new token when made)
    DELETE /admin/virtual-servers/{name}                  remove one (its sessions end)
    POST   /admin/virtual-servers/{name}/tokens           a new token, shown once (`{"replace": true}`: the only one)
    DELETE /admin/virtual-servers/{name}/tokens/{id}      revoke one
    GET    /admin/audit                                   call records, newest first (limit, since, tool,
                                                          virtual_server)

A change is served, then written to the store; a store that cannot be written undoes it and says so. Tokens exist in
plain text only in the answer that made them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._errors import ConfigError, StoreError
from ._audit import AuditLog, AuditQuery
from ._http import BodyError, NameLocks, error, json_body
from ._store import Store
from ._virtual import VirtualServers
from ._virtual_settings import VirtualServerConfig, new_token, parse_virtual_server

__all__ = ["VirtualServerApi"]

log = logging.getLogger("lash_gateway.admin")

Handler = Callable[[Request], Awaitable[Response]]
MAX_AUDIT_LIMIT: Final = 10_000


class VirtualServerApi:
    def __init__(self, virtual: VirtualServers, store: Store, audit: AuditLog | None, locks: NameLocks) -> None:
        """`locks` are the virtual servers' names, shared with whatever else changes them (replicas' changes)."""
        self._virtual = virtual
        self._store = store
        self._audit = audit
        self._locks = locks

    def routes(self, guard: Callable[[Handler], Handler]) -> list[Route]:
        base = "/admin/virtual-servers"
        return [
            Route(base, guard(self._list), methods=["GET"]),
            Route(base + "/{name}", guard(self._get), methods=["GET"]),
            Route(base + "/{name}", guard(self._locked(self._put)), methods=["PUT"]),
            Route(base + "/{name}", guard(self._locked(self._delete)), methods=["DELETE"]),
            Route(base + "/{name}/tokens", guard(self._locked(self._new_token)), methods=["POST"]),
            Route(base + "/{name}/tokens/{token_id}", guard(self._locked(self._revoke)), methods=["DELETE"]),
            Route("/admin/audit", guard(self._audit_records), methods=["GET"]),
        ]

    def _locked(self, handler: Handler) -> Handler:
        """`handler` with its virtual server's name held: the served and the stored change go together."""

        async def locked(request: Request) -> Response:
            async with self._locks.hold(request.path_params["name"]):
                return await handler(request)

        return locked

    async def _list(self, request: Request) -> Response:
        shown = [{"name": name, **config.public()} for name, config in self._virtual.configs().items()]
        return JSONResponse({"virtual_servers": shown})

    async def _get(self, request: Request) -> Response:
        name = request.path_params["name"]
        served = self._virtual.get(name)
        if served is None:
            return error(404, f"no virtual server is named {name!r}")
        shown = {"name": name, **served.config.public(), "tools": served.export.tool_names()}
        return JSONResponse(shown)

    async def _put(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            body = await json_body(request)
            if not body.keys().isdisjoint({"token_hashes", "token_ids"}):
                return error(422, "tokens are given as `tokens` (plain, hashed at once) or made with POST .../tokens")
            config = parse_virtual_server(name, body, where="virtual_servers")
        except ConfigError as exc:
            return error(422, str(exc))
        except BodyError as exc:
            return error(exc.status, str(exc))
        previous = self._virtual.get(name)
        token = None
        if previous is not None and "tokens" not in body:  # tokens are kept unless the body names them
            config = config.model_copy(update={"token_hashes": previous.config.token_hashes})
        elif previous is None and "tokens" not in body:
            token, config = new_token(config)
        created = await self._change(name, config, previous.config if previous else None)
        if isinstance(created, Response):
            return created
        shown: dict[str, Any] = {"name": name, **config.public()}
        if token is not None:
            shown["token"] = token
        return JSONResponse(shown, status_code=201 if previous is None else 200)

    async def _delete(self, request: Request) -> Response:
        name = request.path_params["name"]
        served = self._virtual.get(name)
        if served is None:
            return error(404, f"no virtual server is named {name!r}")
        await self._virtual.remove(name)
        try:
            await self._store.record_virtual_server(name, None)
        except StoreError as exc:
            await self._virtual.put(name, served.config)
            return error(500, f"{exc}; the virtual server was not removed")
        return JSONResponse({"removed": name})

    async def _new_token(self, request: Request) -> Response:
        name = request.path_params["name"]
        served = self._virtual.get(name)
        if served is None:
            return error(404, f"no virtual server is named {name!r}")
        try:
            body = await json_body(request) if await request.body() else {}
        except BodyError as exc:
            return error(exc.status, str(exc))
        replace = body.get("replace", False)
        if not isinstance(replace, bool):
            return error(422, "`replace` is true or false")
        config = served.config.model_copy(update={"token_hashes": []}) if replace else served.config
        token, config = new_token(config)
        changed = await self._change(name, config, served.config)
        if isinstance(changed, Response):
            return changed
        made = config.token_hashes[-1].id
        log.info("virtual server %s: token %s made", name, made, extra={"virtual_server": name, "token_id": made})
        return JSONResponse(
            {"id": made, "token": token, "token_ids": [r.id for r in config.token_hashes]}, status_code=201
        )

    async def _revoke(self, request: Request) -> Response:
        name, token_id = request.path_params["name"], request.path_params["token_id"]
        served = self._virtual.get(name)
        if served is None:
            return error(404, f"no virtual server is named {name!r}")
        kept = [record for record in served.config.token_hashes if record.id != token_id]
        if len(kept) == len(served.config.token_hashes):
            return error(404, f"virtual server {name} has no token {token_id!r}")
        changed = await self._change(name, served.config.model_copy(update={"token_hashes": kept}), served.config)
        if isinstance(changed, Response):
            return changed
        log.info("virtual server %s: token %s revoked", name, token_id, extra={"virtual_server": name})
        return JSONResponse({"revoked": token_id, "token_ids": [record.id for record in kept]})

    async def _change(
        self, name: str, config: VirtualServerConfig, previous: VirtualServerConfig | None
    ) -> bool | Response:
        """Serve `config`, then store it; undone (and a 500 answer) if the store cannot be written."""
        try:
            created = await self._virtual.put(name, config)
        except ConfigError as exc:
            return error(422, str(exc))
        try:
            await self._store.record_virtual_server(name, config)
        except StoreError as exc:
            if previous is None:
                await self._virtual.remove(name)
            else:
                await self._virtual.put(name, previous)
            return error(500, f"{exc}; the change was undone")
        return created

    async def _audit_records(self, request: Request) -> Response:
        if self._audit is None:
            return error(404, "the audit log is off (gateway.audit.enabled)")
        try:
            query = _audit_query(dict(request.query_params))
        except ValueError as exc:
            return error(422, str(exc))
        try:
            await self._audit.flush()  # what was called before this request is in the answer
            entries = await self._store.read_audit(query)
        except StoreError as exc:
            return error(500, str(exc))
        return JSONResponse({"records": [entry.public() for entry in entries]})


def _audit_query(params: dict[str, str]) -> AuditQuery:
    unknown = params.keys() - {"limit", "since", "tool", "virtual_server"}
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}: limit, since, tool and virtual_server are known")
    try:
        limit = int(params.get("limit", "100"))
    except ValueError:
        raise ValueError("limit is a whole number") from None
    if not 1 <= limit <= MAX_AUDIT_LIMIT:
        raise ValueError(f"limit is 1 to {MAX_AUDIT_LIMIT}")
    since = None
    if "since" in params:
        try:
            given = datetime.fromisoformat(params["since"])
        except ValueError:
            raise ValueError("since is a time in ISO 8601 (2026-12-03T10:00:00Z)") from None
        since = (given if given.tzinfo is not None else given.replace(tzinfo=UTC)).timestamp()
    return AuditQuery(limit, since, params.get("tool"), params.get("virtual_server"))
