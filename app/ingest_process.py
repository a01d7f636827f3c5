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
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from ingest.runner import IngestService
from kernel.db import create_engine
from kernel.logging_setup import configure_logging
from kernel.settings import Settings

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20.0
MAX_RESTART_BACKOFF_S = 30.0


async def run_ingest(settings: Settings, database_url: str) -> None:
    """The pollers until SIGINT or SIGTERM."""
    engine = create_engine(database_url, role="ingest")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
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
        if service is not None:
            await service.stop()
        await engine.dispose()


def _child(settings: Settings, database_url: str) -> None:
    configure_logging(settings.log_format, settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_ingest(settings, database_url))


class IngestProcess:
    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.process: BaseProcess | None = None
        self.restarts = 0

    def start(self) -> None:
        # spawn, not fork: the parent may already hold an event loop, threads and sockets.
        ctx = mp.get_context("spawn")
        self.process = ctx.Process(
            target=_child, args=(self.settings, self.database_url), name="mobility-ingest"
        )
        self.process.start()

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
        return proc.exitcode
