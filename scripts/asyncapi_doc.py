"""Render the topic enum of docs/asyncapi.yaml from the topic registry (kernel/topics.py).

    python scripts/asyncapi_doc.py        # rewrite docs/asyncapi.yaml in place

The rest of the AsyncAPI document is written by hand; the list of topics is generated so it
cannot drift from the registry: tests/foundation/test_asyncapi_doc.py fails when the committed
file is not what this renders, and the websocket contract tests validate every server message
against the file (a topic missing from the enum fails them).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernel.topics import TOPICS  # noqa: E402

ASYNCAPI = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"
# The enum of components.schemas.Topic, on one line.
TOPIC_ENUM = re.compile(r"(?m)^(    Topic:\n      type: string\n      enum: )\[[^\]\n]*\]$")


def render(text: str, topics: Iterable[str] = TOPICS) -> str:
    """``text`` with the Topic enum listing ``topics`` (the registry's, in its order)."""
    rendered, found = TOPIC_ENUM.subn(lambda m: f"{m.group(1)}[{', '.join(topics)}]", text)
    if found != 1:
        raise ValueError("docs/asyncapi.yaml: components.schemas.Topic with a one-line enum not found")
    return rendered


if __name__ == "__main__":
    ASYNCAPI.write_text(render(ASYNCAPI.read_text(encoding="utf-8")), encoding="utf-8")
