"""RFC 9457 problem details for every error the HTTP API returns.

One shape for all errors (``type``, ``title``, ``status``, ``detail``, ``instance``, and
``errors`` for parameter problems) means a client needs one error path, and bad input
can never surface as a 500 or as FastAPI's own ``{"detail": …}`` body. The OpenAPI
document is rewritten to match, so generated clients and schemathesis see the truth.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, TypeVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Specific problem types are URNs: stable identifiers that do not pretend to be dereferenceable.
INVALID_PARAMETERS = "urn:mobility-live:problem:invalid-parameters"
NOT_FOUND = "urn:mobility-live:problem:not-found"
RATE_LIMITED = "urn:mobility-live:problem:rate-limited"
UNAUTHORIZED = "urn:mobility-live:problem:unauthorized"
UNAVAILABLE = "urn:mobility-live:problem:unavailable"


class ParameterError(BaseModel):
    loc: list[str | int] = Field(description="Where: e.g. ['query', 'bbox'].")
    msg: str
    type: str = "value_error"


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(default="about:blank", examples=[INVALID_PARAMETERS])
    title: str = Field(examples=["Invalid parameters"])
    status: int = Field(ge=400, le=599, examples=[400])
    detail: str | None = Field(default=None, examples=["bbox: min_lon must be < max_lon"])
    instance: str | None = Field(default=None, examples=["/api/v1/parking/sites"])
    errors: list[ParameterError] | None = None


_T = TypeVar("_T")


class ProblemError(Exception):
    """Raised anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        type: str = "about:blank",
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title or str(status))
        self.status = status
        self.detail = detail
        self.type = type
        self.title = title or HTTPStatus(status).phrase
        self.errors = errors
        self.headers = headers or {}


def invalid(field: str, msg: str, *, where: str = "query") -> ProblemError:
    """A 400 for one bad parameter, in the same shape as a validation failure."""
    return ProblemError(
        400,
        f"{field}: {msg}",
        type=INVALID_PARAMETERS,
        title="Invalid parameters",
        errors=[{"loc": [where, field], "msg": msg, "type": "value_error"}],
    )


def not_found(what: str) -> ProblemError:
    return ProblemError(404, f"{what} not found", type=NOT_FOUND, title="Not found")


def found(value: _T | None, what: str) -> _T:
    """``value``, or the 404 naming ``what`` when the lookup found nothing."""
    if value is None:
        raise not_found(what)
    return value


def problem_response(request: Request | None, problem: ProblemError) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path if request is not None else None,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers)


def _clean_loc(loc: Any) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(request, exc)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    type_ = NOT_FOUND if exc.status_code == 404 else "about:blank"
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(request, ProblemError(exc.status_code, detail, type=type_, headers=headers))


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    """Bad parameters are 400 with every failure listed; the raw input is not echoed back."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": _clean_loc(err.get("loc", ())),
            "msg": str(err.get("msg", "invalid")),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)[:1000]
    problem = ProblemError(400, detail, type=INVALID_PARAMETERS, title="Invalid parameters", errors=errors)
    return problem_response(request, problem)


# SQLSTATE classes of a database that is down, restarting, recovering or overloaded (08
# connection, 53 insufficient resources, 57 operator intervention: admin/crash shutdown,
# cannot connect now, query canceled by statement_timeout), and of data it cannot hold (22).
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
DATA_SQLSTATE_CLASS = "22"
RETRY_AFTER_S = 2


def _sqlstate(exc: BaseException) -> str:
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return ""


def database_unavailable(exc: BaseException) -> bool:
    """True when the error says the database cannot serve now, not that the request is wrong."""
    if isinstance(exc, sa_exc.TimeoutError | asyncpg.exceptions.InterfaceError):
        return True  # pool exhausted / connection gone
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OSError):
        # Refused, reset, timed out, or the Unix socket gone — but only on the way to the
        # database: a missing file elsewhere is a bug, not an outage.
        return _raised_by_database_driver(exc)
    state = _sqlstate(exc)
    if state[:2] in UNAVAILABLE_SQLSTATE_CLASSES:
        return True
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None) or exc.__cause__
    return isinstance(cause, OSError | asyncpg.exceptions.InterfaceError | asyncpg.PostgresConnectionError)


_DRIVER_MODULES = ("asyncpg", "sqlalchemy")


def _raised_by_database_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.split(".", 1)[0] in _DRIVER_MODULES:
            return True
        tb = tb.tb_next
    return False


async def _on_database(request: Request, exc: Exception) -> JSONResponse:
    """Database and connection errors, answered here rather than by the last-resort handler
    (which re-raises, so the server logs a second traceback and drops the keep-alive)."""
    if database_unavailable(exc):
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            reason = "pool_timeout" if isinstance(exc, sa_exc.TimeoutError) else "database"
            metrics.unavailable.labels(reason).inc()
        # An outage is not a bug: a short warning, and a 503 the client can retry.
        log.warning(
            "database unavailable",
            extra={"path": request.url.path, "error": f"{type(exc).__name__}: {exc}"[:300]},
        )
        unavailable = ProblemError(
            503,
            "the database is unavailable or recovering; retry shortly",
            type=UNAVAILABLE,
            title="Service Unavailable",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
        return problem_response(request, unavailable)
    if _sqlstate(exc)[:2] == DATA_SQLSTATE_CLASS:
        # Data exception (out of range, bad encoding, ...): a value the checks above let through
        # that PostgreSQL cannot hold. It is the request's fault, so a 400 — and logged, to add a check.
        log.warning(
            "parameter refused by the database", extra={"path": request.url.path, "error": str(exc)[:300]}
        )
        refused = "a parameter is outside what the database accepts"
        return problem_response(
            request, ProblemError(400, refused, type=INVALID_PARAMETERS, title="Invalid parameters")
        )
    return await _on_unexpected(request, exc)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Logged with the traceback; the client learns nothing about internals.
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(request, ProblemError(500, "internal error; it has been logged"))


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _rewrite_openapi(app: FastAPI) -> None:
    """Every operation documents its errors as problem+json (400 replaces FastAPI's 422)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            servers=app.servers,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components["ParameterError"] = ParameterError.model_json_schema()
        components["Problem"].pop("$defs", None)
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                responses.pop("422", None)
                # Answered by the server before any route (app/server.py), for every operation.
                responses.setdefault(
                    "431",
                    {
                        "description": "Request line and headers larger than the server's limit",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                )
                if not (path.startswith("/api/") or path.startswith("/ngsi-ld/")):
                    if operation.get("parameters"):
                        responses.setdefault(
                            "400", {"description": "Invalid parameters", "content": _problem_content()}
                        )
                    continue
                responses.setdefault(
                    "400", {"description": "Invalid parameters", "content": _problem_content()}
                )
                if "{" in path or any(p.get("in") == "query" for p in operation.get("parameters", [])):
                    responses.setdefault("404", {"description": "Not found", "content": _problem_content()})
                responses.setdefault(
                    "429",
                    {
                        "description": "Rate limit exceeded; retry after `Retry-After` seconds",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": _problem_content(),
                    },
                )
                if method == "get":
                    responses.setdefault(
                        "304", {"description": "Not modified (If-None-Match matched the ETag)"}
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    for error in (sa_exc.SQLAlchemyError, asyncpg.PostgresError, asyncpg.exceptions.InterfaceError, OSError):
        app.add_exception_handler(error, _on_database)
    app.add_exception_handler(Exception, _on_unexpected)
    _rewrite_openapi(app)
