"""The floor both halves stand on: settings, database access, logging, advisory-lock ids.

``kernel`` imports neither ``app`` nor ``ingest`` (tests/foundation/test_layers.py checks it);
``ingest`` imports ``kernel`` and never ``app``; ``app`` imports both. The pieces are composed
only where a process starts: the CLI (``app/cli.py``) and the app lifespan (``app/main.py``).
"""
