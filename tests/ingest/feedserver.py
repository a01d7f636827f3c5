"""A real HTTP server on 127.0.0.1 that serves captured payloads and misbehaves on demand.

Written on raw asyncio streams rather than a framework because the faults under test
(a body cut short of its Content-Length, a trickle of bytes, a connection that just
hangs) are exactly what a well-behaved framework refuses to produce.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    etag: bool = True  # answer If-None-Match with 304 when the body is unchanged
    delay: float = 0.0  # seconds before the status line
    trickle: float = 0.0  # seconds between 1-byte writes of the body
    truncate_to: int | None = None  # send only this many body bytes, then close
    gzip: bool = False
    hits: int = 0


@dataclass
class FeedServer:
    routes: dict[str, Route] = field(default_factory=dict)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes, **kw: object) -> str:
        self.routes[path] = Route(body=body, **kw)  # type: ignore[arg-type]
        return self.url(path)

    # -- server plumbing
    def start(self) -> FeedServer:
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()

            async def main() -> None:
                self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
                self.port = self.server.sockets[0].getsockname()[1]
                ready.set()
                async with self.server:
                    await self.server.serve_forever()

            try:
                self.loop.run_until_complete(main())
            except asyncio.CancelledError:
                pass

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        def close() -> None:
            self.server.close()
            for task in asyncio.all_tasks(self.loop):
                task.cancel()

        self.loop.call_soon_threadsafe(close)
        self.thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        route = self.routes.get(path) or self.routes.get(path.split("?")[0])
        try:
            if route is None:
                await self._write(writer, 404, b"not found", "text/plain", {})
                return
            route.hits += 1
            if route.delay:
                await asyncio.sleep(route.delay)
            body = gzip.compress(route.body) if route.gzip else route.body
            tag = '"' + hashlib.sha1(route.body).hexdigest()[:16] + '"'
            extra = {"ETag": tag} if route.etag else {}
            if route.gzip:
                extra["Content-Encoding"] = "gzip"
            if route.etag and headers.get("if-none-match") == tag and route.status == 200:
                await self._write(writer, 304, b"", route.content_type, extra)
                return
            await self._write(writer, route.status, body, route.content_type, extra, route)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _write(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str,
        extra: dict[str, str],
        route: Route | None = None,
    ) -> None:
        reason = {200: "OK", 304: "Not Modified", 404: "Not Found", 500: "Internal Server Error"}.get(
            status, "X"
        )
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", "Connection: close"]
        if status != 304:
            head.append(f"Content-Length: {len(body)}")
        head += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if status == 304:
            await writer.drain()
            return
        if route is not None and route.truncate_to is not None:
            writer.write(body[: route.truncate_to])
            await writer.drain()
            return
        if route is not None and route.trickle:
            deadline = time.monotonic() + 60
            for i in range(len(body)):
                writer.write(body[i : i + 1])
                await writer.drain()
                await asyncio.sleep(route.trickle)
                if time.monotonic() > deadline:
                    return
            return
        writer.write(body)
        await writer.drain()
