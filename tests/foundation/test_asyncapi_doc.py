"""docs/asyncapi.yaml lists the registry's topics: regenerate with `python scripts/asyncapi_doc.py`."""

from __future__ import annotations

import yaml

from kernel.topics import TOPICS
from scripts.asyncapi_doc import ASYNCAPI, render


def test_asyncapi_topic_enum_is_the_registry() -> None:
    committed = ASYNCAPI.read_text(encoding="utf-8")
    assert render(committed) == committed, "docs/asyncapi.yaml is stale: run python scripts/asyncapi_doc.py"
    assert yaml.safe_load(committed)["components"]["schemas"]["Topic"]["enum"] == list(TOPICS)


def test_render_follows_the_topics_it_is_given() -> None:
    rendered = yaml.safe_load(render(ASYNCAPI.read_text(encoding="utf-8"), [*TOPICS, "charging"]))
    assert rendered["components"]["schemas"]["Topic"]["enum"] == [*TOPICS, "charging"]
