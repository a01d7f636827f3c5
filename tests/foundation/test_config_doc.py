"""docs/configuration.md documents every setting the code reads."""

from pathlib import Path

from kernel.settings import Settings
from scripts.config_doc import env_name

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [env_name(name) for name in Settings.model_fields if f"`{env_name(name)}`" not in text]
    assert not missing, f"regenerate with: python scripts/config_doc.py > docs/configuration.md ({missing})"
