"""A real webhook receiver on 127.0.0.1: records every request, answers as the test says.

It can be taken down (the port closed: connection refused) and brought back on the same port,
which is what "a receiver that is down for a while" means to the sender.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    path: str
    late: bool = False


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    mode: str = "ok"  # ok | status:<code> | redirect | slow:<seconds>
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                mode = owner.mode
                status = 200
                if mode.startswith("status:"):
                    status = int(mode.split(":", 1)[1])
                elif mode == "redirect":
                    status = 307
                headers = {k.lower(): v for k, v in self.headers.items()}
                # Recorded on arrival; a slow answer is one the sender has given up on.
                owner.received.append(
                    Received(headers, body, status, self.path, late=mode.startswith("slow:"))
                )
                if mode.startswith("slow:"):
                    time.sleep(float(mode.split(":", 1)[1]))
                self.send_response(status)
                if status == 307:
                    self.send_header("location", "http://127.0.0.1:1/elsewhere")
                self.send_header("content-length", "2")
                self.end_headers()
                try:
                    self.wfile.write(b"ok")
                except OSError:
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.status < 300 and not r.late]
