"""Writing what the pollers read: one transaction per poll, changes announced by the commit.

* ``writer``: ``Store`` — sites, readings, current state, events, health, partitions;
* ``topics``: how parking, traffic and bike sites map onto their tables;
* ``queries``: small SQL helpers shared by the steps.
"""

from ingest.store.queries import PollInfo
from ingest.store.writer import ApplyResult, Store, site_id
from kernel.changefeed import NOTIFY_CHANNEL
from kernel.locks import CHANGES_LOCK

__all__ = ["CHANGES_LOCK", "NOTIFY_CHANNEL", "ApplyResult", "PollInfo", "Store", "site_id"]
