"""Reusable dependencies as ``Annotated`` types: ``ServiceDep`` (the process's ``Service``),
``PrincipalDep`` (the API key's dealer group and rooftops, or 401) and ``require_operator``
(the operator key, or 401).

They are ``async def``: cheap, and FastAPI would run a plain ``def`` on the threadpool.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, APIKeyQuery

from cjm_ml.serving.service import Service
from cjm_ml.serving.tenants import Principal

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="cjm.<key_id>.<secret>"
)
#: For a browser opening /journey: the key as ``?api_key=`` (never logged: the access log
#: records the path only).
api_key_query = APIKeyQuery(name="api_key", auto_error=False, description="Same key, for browsers")

HeaderKeyDep = Annotated[str | None, Depends(api_key_header)]
QueryKeyDep = Annotated[str | None, Depends(api_key_query)]


async def get_service(request: Request) -> Service:
    """The process's ``Service`` (opened by the app's lifespan)."""
    return cast(Service, request.app.state.service)


ServiceDep = Annotated[Service, Depends(get_service)]


async def get_principal(
    request: Request, service: ServiceDep, api_key: HeaderKeyDep, query_key: QueryKeyDep
) -> Principal:
    """Who is asking: the key's (header, else ``?api_key=``) dealer group and rooftops.
    Refuses (401) a missing or unknown key. Notes the key id for the access log."""
    api_key = api_key or query_key
    principal = service.tenants.authenticate(api_key)
    if principal is None:
        raise HTTPException(
            401,
            "missing API key (X-API-Key header)" if not api_key else "invalid API key",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    request.state.key_id = principal.key_id
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_operator(service: ServiceDep, api_key: HeaderKeyDep) -> None:
    """Refuses (401) unless the header carries the operator key (its hash is
    ``CJM_ADMIN_KEY_HASH``; none set: nobody is the operator)."""
    expected = service.settings.admin_key_hash
    digest = "sha256:" + hashlib.sha256((api_key or "").encode()).hexdigest()
    if not api_key or not expected or not hmac.compare_digest(digest, expected):
        raise HTTPException(401, "the operator key is missing or wrong")
