"""Compatibility shim: database access moved to ``kernel.db``.

Kept so that code written against the old path still imports; new code imports ``kernel.db``.
"""

from __future__ import annotations

from typing import Any

import kernel.db as _db
from kernel.db import (
    DATABASE_NAME,
    EmbeddedPostgres,
    asyncpg_dsn,
    create_engine,
    resolve_database_url,
    sessionmaker,
    sqlalchemy_url,
)

__all__ = [
    "DATABASE_NAME",
    "EmbeddedPostgres",
    "asyncpg_dsn",
    "create_engine",
    "resolve_database_url",
    "sessionmaker",
    "sqlalchemy_url",
]


def __getattr__(name: str) -> Any:
    return getattr(_db, name)
