"""A fault at the edge: a Unix-socket proxy in front of the test PostgreSQL that can be cut.

Cutting it closes every proxied connection and refuses new ones, which is what the
application sees when its database stops; restoring it is the restart. The database
itself is shared by the other tests and is never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class PgProxy:
    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        query = dict(parse_qsl(parts.query))
        self.target = Path(query["host"]) / f".s.PGSQL.{parts.port or 5432}"
        self.dir = Path(tempfile.mkdtemp(prefix="pgproxy-"))
        self.socket = self.dir / ".s.PGSQL.5432"
        query["host"] = str(self.dir)
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.AbstractServer | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(str(self.target))
        except OSError:
            writer.close()
            return
        self.pipes.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.pipes.difference_update((writer, up_writer))

    async def _start(self) -> None:
        self.server = await asyncio.start_unix_server(self._client, path=str(self.socket))

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        for writer in list(self.pipes):
            writer.transport.abort()
        self.pipes.clear()

    def _run(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]

    def start(self) -> PgProxy:
        if not self.thread.is_alive():
            self.thread.start()
        self._run(self._start())
        return self

    def cut(self) -> None:
        self._run(self._cut())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
