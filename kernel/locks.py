"""Every PostgreSQL advisory lock of the project, in one registry.

Advisory locks share one 64-bit key space per database, so two features picking the same
number would silently serialize (or exclude) each other. Fixed ids live here; locks keyed
by a name use ``hashtext(prefix || name)`` with a prefix registered here, so two families
never hash the same text (a 32-bit hash may still, rarely, equal a fixed id: the cost is a
short wait, never a wrong result). tests/foundation/test_layers.py checks the ids are distinct.
"""

from __future__ import annotations

from typing import Final

# Session lock held while Alembic migrates: concurrent starters migrate once (migrations/env.py).
MIGRATION_LOCK: Final = 7_342_001
# Transaction lock held from drawing a change's seq until commit: seq order is commit order.
CHANGES_LOCK: Final = 7_342_002
# Transaction lock of the change-log retention job: one process purges at a time.
RETENTION_LOCK: Final = 7_342_101
# Transaction lock of a forecast publishing pass (app/forecast/publisher.py): one publisher
# across API processes, so a forecast change is written once.
FORECAST_LOCK: Final = 7_342_115

# Session lock per feed, ``hashtext(FEED_LOCK_PREFIX || feed name)``: one poller per feed.
FEED_LOCK_PREFIX: Final = "mobility_feed:"
# Transaction lock per partitioned table, taken in SQL by the partition functions of
# migration 0001 (``hashtext('mobility_partitions:' || tbl)``); listed so the family is known.
PARTITIONS_LOCK_PREFIX: Final = "mobility_partitions:"

FIXED_LOCKS: Final[dict[str, int]] = {
    "migration": MIGRATION_LOCK,
    "changes": CHANGES_LOCK,
    "retention": RETENTION_LOCK,
    "forecast": FORECAST_LOCK,
}
LOCK_PREFIXES: Final[dict[str, str]] = {"feed": FEED_LOCK_PREFIX, "partitions": PARTITIONS_LOCK_PREFIX}
