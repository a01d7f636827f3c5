"""The parking trend, computed when a poll is written rather than joined per row at read time.

A site's trend is its last minus its first free count among its observations in the
``api_trend_window_minutes`` before its **latest reading**, classified against a threshold
that scales with capacity (``api_trend_steady_pct``). Reads then take two columns of
``parking_sites``; the only thing left to the reader is age: a site whose latest reading
is older than the window has no trend ("unknown"), exactly as an empty window did when the
trend was computed per request (app/api/parking.py).
"""

from __future__ import annotations

import asyncpg

# $1 site ids touched by this poll, $2 window in seconds, $3 steady threshold in % of capacity.
REFRESH_SQL = """
UPDATE parking_sites AS s
SET trend_free_delta = t.delta,
    trend = CASE WHEN coalesce(t.n, 0) < 2 OR t.delta IS NULL THEN 'unknown'
                 WHEN abs(t.delta) < greatest(1, coalesce(s.capacity, 0) * $3::float8 / 100.0) THEN 'steady'
                 WHEN t.delta < 0 THEN 'filling'
                 ELSE 'emptying'
            END
FROM unnest($1::text[]) AS u(id)
JOIN parking_sites cur ON cur.id = u.id
CROSS JOIN LATERAL (
    SELECT (array_agg(o.free ORDER BY o.observed_at DESC))[1]
           - (array_agg(o.free ORDER BY o.observed_at))[1] AS delta,
           count(*) AS n
    FROM parking_observations o
    WHERE o.site_id = u.id
      AND o.observed_at >= cur.observed_at - make_interval(secs => $2::float8)
      AND o.observed_at <= cur.observed_at
      AND o.free IS NOT NULL
) t
WHERE s.id = u.id
"""


async def refresh(raw: asyncpg.Connection, site_ids: list[str], window_s: float, steady_pct: float) -> None:
    if site_ids:
        await raw.execute(REFRESH_SQL, site_ids, window_s, steady_pct)
