"""Regenerate docs/configuration.md from the Settings class.

    python scripts/config_doc.py > docs/configuration.md


The table is generated so it cannot drift from the code; tests/foundation/test_config_doc.py
fails when a setting is missing from the committed file.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernel.settings import Settings  # noqa: E402

HEADER = """# Configuration

Settings come from environment variables with the prefix `MOBILITY_` (or a `.env` file in
the working directory). `DATABASE_URL` is also read without the prefix. Feeds are configured
in a TOML feeds file (`MOBILITY_FEEDS_FILE` or `--feeds`), described in
[ingest.md](ingest.md).

This table is generated from `kernel/settings.py` by `scripts/config_doc.py`.

| variable | default | meaning |
|---|---|---|
"""


def env_name(name: str) -> str:
    return "DATABASE_URL" if name == "database_url" else f"MOBILITY_{name.upper()}"


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=False)
        if field.default_factory is not None:
            shown = "(computed)" if name == "data_dir" else repr(field.default_factory())
        else:
            shown = "unset" if default is None else repr(default)
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{env_name(name)}` | `{shown}` | {meaning} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
