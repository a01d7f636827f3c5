"""`mobility up`'s ingest in a child process: parsing a national feed must not stall the hub.

Parsing is CPU work in Python: a 50 MB DATEX II poll holds the interpreter for over a
second whether it runs on the event loop or on a thread (the GIL), and every websocket
client waits that long for its next change. In a child process it runs on its own core
and the API process only reads the change log the child commits (the same path as
``mobility serve`` + ``mobility ingest``). It is still one command: the child is started
after migrations and stopped when the server stops. Ctrl-C reaches the whole foreground
process group, so the child stops on it too; SIGTERM is sent as well, for the case where
the parent is stopped alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import tempfile
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path

from prometheus_client import generate_latest

from ingest import metrics as ingest_metrics
from ingest.runner import IngestService
from kernel.db import create_engine
from kernel.logging_setup import configure_logging
from kernel.settings import Settings

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20.0
MAX_RESTART_BACKOFF_S = 30.0
# How often the child writes its pollers' metrics for the parent's /metrics, and how old that
# file may be before the parent stops exposing it (a hung child must not look healthy).
METRICS_INTERVAL_S = 2.0
METRICS_MAX_AGE_S = 5 * METRICS_INTERVAL_S


def write_metrics(path: Path) -> None:
    """The pollers' registry in the text format, replaced atomically (a reader never sees half)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(generate_latest(ingest_metrics.REGISTRY))
    tmp.replace(path)


async def _publish_metrics(path: Path, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            write_metrics(path)
        except OSError:
            log.warning("could not write ingest metrics to %s", path, exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), METRICS_INTERVAL_S)


async def run_ingest(settings: Settings, database_url: str, metrics_path: Path | None = None) -> None:
    """The pollers until SIGINT or SIGTERM; their metrics written to ``metrics_path`` if given."""
    engine = create_engine(database_url, role="ingest")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    publisher = asyncio.create_task(_publish_metrics(metrics_path, stop)) if metrics_path else None
    service: IngestService | None = None
    backoff = 1.0
    try:
        # A database that is restarting or in recovery at this moment must not end ingest for
        # the life of the server: starting is retried (with a fresh service) until it succeeds.
        while not stop.is_set():
            service = IngestService(settings=settings, engine=engine, database_url=database_url)
            try:
                await service.start()
                break
            except Exception:
                log.exception("ingest process could not start; retrying in %.0fs", backoff)
                await service.stop()
                service = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, MAX_RESTART_BACKOFF_S)
        if service is not None:
            log.info("ingest process started", extra={"pid": os.getpid(), "feeds": len(service.feeds)})
            await stop.wait()
    finally:
        stop.set()
        if publisher is not None:
            await publisher
        if service is not None:
            await service.stop()
        await engine.dispose()


def _child(settings: Settings, database_url: str, metrics_path: Path | None = None) -> None:
    configure_logging(settings.log_format, settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_ingest(settings, database_url, metrics_path))


class IngestProcess:
    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.process: BaseProcess | None = None
        self.restarts = 0
        # The pollers' metrics live in the child; it writes them here for the parent's /metrics.
        self._metrics_dir = tempfile.TemporaryDirectory(prefix="mobility-ingest-metrics-")
        self.metrics_path = Path(self._metrics_dir.name) / "ingest.prom"

    def start(self) -> None:
        # spawn, not fork: the parent may already hold an event loop, threads and sockets.
        ctx = mp.get_context("spawn")
        self.metrics_path.unlink(missing_ok=True)  # a restarted child must not show its predecessor's
        self.process = ctx.Process(
            target=_child, args=(self.settings, self.database_url, self.metrics_path), name="mobility-ingest"
        )
        self.process.start()

    def metrics_text(self) -> str | None:
        """The child's latest metrics, or None when it is not running or has not written lately."""
        if not self.alive():
            return None
        try:
            age = time.time() - self.metrics_path.stat().st_mtime
            if age > METRICS_MAX_AGE_S:
                return None
            return self.metrics_path.read_text(encoding="utf-8")
        except OSError:
            return None

    async def supervise(self, stopping: Callable[[], bool], interval: float = 1.0) -> None:
        """Start the child again whenever it exits while the server is not stopping.

        Without this, a child that died (killed, out of memory, a bug) left the server up and
        answering with data that silently stopped changing. Restarts back off while the child
        keeps dying young."""
        backoff = interval
        while True:
            await asyncio.sleep(backoff)
            proc = self.process
            if proc is None or proc.is_alive() or stopping():
                if proc is not None and proc.is_alive():
                    backoff = interval
                continue
            self.restarts += 1
            log.error(
                "ingest process exited (code %s) while the server runs; starting it again", proc.exitcode
            )
            self.start()
            backoff = min(backoff * 2, MAX_RESTART_BACKOFF_S)

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def stop(self) -> int | None:
        """Stop the child (SIGTERM, then SIGKILL after a timeout); its exit code."""
        proc = self.process
        if proc is None:
            return None
        if proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            proc.join(STOP_TIMEOUT_S)
            if proc.is_alive():
                log.warning("ingest process did not stop in %.0fs; killing it", STOP_TIMEOUT_S)
                proc.kill()
                proc.join(5)
        self._metrics_dir.cleanup()
        return proc.exitcode
