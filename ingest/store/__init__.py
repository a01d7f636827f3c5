"""Writing what the pollers read: one transaction per poll, changes announced by the commit.

* ``writer``: ``Store`` — sites, readings, current state, events, health, partitions;
* ``changelog``: the ``changes`` rows and the NOTIFY the live feed reads (docs/architecture.md);
* ``kinds``: how parking, traffic and bike sites map onto their tables;
* ``queries``: small SQL helpers shared by the steps.
"""

from ingest.store.changelog import CHANGES_LOCK, NOTIFY_CHANNEL
from ingest.store.queries import PollInfo
from ingest.store.writer import ApplyResult, Store, site_id

__all__ = ["CHANGES_LOCK", "NOTIFY_CHANNEL", "ApplyResult", "PollInfo", "Store", "site_id"]
