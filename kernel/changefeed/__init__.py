"""The change feed: the ``changes`` table and its NOTIFY, one contract for both sides.

Publish (``publish.write_changes``): the writer appends its changes inside its own
transaction, drawing each ``seq`` under a transaction-level advisory lock held until commit
(seq order is commit order), and NOTIFYs ``NOTIFY_CHANNEL`` in the same transaction, so the
notification is delivered only once the changes are durable.

Subscribe (``subscribe.listen`` + ``subscribe.read_after``): a hub LISTENs on the channel and,
on each notification (or a periodic poll, or a reconnect), reads ``seq > last`` in order.

Retention (``retention.purge``): one process at a time deletes what is older than the resume
window, always keeping the newest row. docs/architecture.md states the contract in full.

Both ``ingest`` (the writer) and ``app`` (the live hub) import this; it imports neither.
"""

from kernel.changefeed.channel import NOTIFY_CHANNEL
from kernel.changefeed.publish import NewChange, write_changes
from kernel.changefeed.retention import purge
from kernel.changefeed.subscribe import Change, latest_seq, listen, read_after

__all__ = [
    "NOTIFY_CHANNEL",
    "Change",
    "NewChange",
    "latest_seq",
    "listen",
    "purge",
    "read_after",
    "write_changes",
]
