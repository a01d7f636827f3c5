"""A new feed format is its module alone: found by its ``FORMAT`` line, not by a list to edit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ingest import adapters
from ingest.records import Batch
from ingest.spec import ParseContext

MODULE = '''
"""A toy format for the discovery test: a payload starting with b"TOY"."""
from ingest.records import Batch

FORMAT = "toy"


def sniff(head: bytes) -> int:
    return 100 if head.startswith(b"TOY") else 0


def parse(body, ctx):
    return Batch(format=FORMAT)
'''


@pytest.fixture
def toy_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package laid out like ingest/adapters: one listed module, one new, one helper."""
    root = tmp_path / "toy_adapters"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "listed.py").write_text('FORMAT = "listed"\n')
    (root / "toy.py").write_text(MODULE)
    (root / "common.py").write_text("SHARED = 1\n")  # a helper module, not a format
    (root / "_private.py").write_text('FORMAT = "private"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [m for m in sys.modules if m.startswith("toy_adapters")]:
        del sys.modules[name]


def test_a_module_with_a_format_line_is_found_and_helpers_are_not(toy_package: Path) -> None:
    found = adapters.discover([str(toy_package)], "toy_adapters", {"listed": "toy_adapters.listed"})
    assert found == {"toy": "toy_adapters.toy"}


def test_a_listed_format_is_not_found_twice(toy_package: Path) -> None:
    (toy_package / "again.py").write_text('FORMAT = "listed"\n')
    found = adapters.discover([str(toy_package)], "toy_adapters", {"listed": "toy_adapters.listed"})
    assert "listed" not in found


def test_found_formats_are_named_sniffed_and_parsed(
    toy_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = adapters.discover([str(toy_package)], "toy_adapters", {"listed": "toy_adapters.listed"})
    modules = {**{k: v for k, v in adapters.MODULES.items() if k != "generic"}, **found}
    modules["generic"] = adapters.MODULES["generic"]
    monkeypatch.setattr(adapters, "all_modules", lambda: modules)
    assert "toy" in adapters.formats()
    assert adapters.formats()[-1] == "generic"  # the catch-all stays last
    assert adapters.detect(b"TOY payload") == "toy"
    batch = adapters.parse_payload(b"TOY 1", ParseContext())
    assert isinstance(batch, Batch) and batch.format == "toy"


def test_the_built_in_formats_are_all_listed() -> None:
    """Every shipped format is in MODULES (its order breaks sniffing ties): none is only found."""
    assert adapters.discover(adapters.__path__, adapters.__name__, adapters.MODULES) == {}
    assert adapters.formats() == list(adapters.MODULES)
