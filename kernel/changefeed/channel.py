"""The one name both sides of the change feed agree on."""

from __future__ import annotations

from typing import Final

# Publishers NOTIFY it in their transaction (delivered only on commit); hubs LISTEN on it.
NOTIFY_CHANNEL: Final = "mobility_changes"
