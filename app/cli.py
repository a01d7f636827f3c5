"""The ``mobility`` command.

``up`` is the whole system in one process (database, migrations, ingest, API,
dashboard); ``serve`` and ``ingest`` split it for deployments with several API
processes and one ingest process on a shared PostgreSQL (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from app.config import FeedsFileError, Settings, get_settings, load_feeds
from app.logging_setup import configure_logging

log = logging.getLogger("mobility")


def _settings(args: argparse.Namespace) -> Settings:
    settings = get_settings()
    updates: dict[str, Any] = {}
    for name in ("host", "port", "feeds_file", "data_dir"):
        value = getattr(args, name, None)
        if value is not None:
            updates[name] = value
    if getattr(args, "demo", None) is not None:
        updates["demo"] = args.demo
    if updates:
        settings = settings.model_copy(update=updates)
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _run_server(settings: Settings, *, run_ingest: bool) -> int:
    import uvicorn

    from app import migrate
    from app.db import resolve_database_url
    from app.ingest_process import IngestProcess
    from app.live.frames import FrameWebSocketProtocol
    from app.main import create_app

    url, embedded = resolve_database_url(settings.database_url, settings.pgdata)
    ingest_child: IngestProcess | None = None
    try:
        migrate.upgrade(url)
        if run_ingest and settings.up_ingest_process:
            # Parsing in its own process: a large feed's poll never stalls the hub (app/ingest_process.py).
            ingest_child = IngestProcess(settings, url)
            ingest_child.start()
            run_ingest = False
        app = create_app(settings, database_url=url, run_ingest=run_ingest)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            lifespan="on",
            # Oversized client messages are answered with an error by the protocol layer;
            # only frames beyond this hard cap close the connection (1009).
            ws_max_size=1024 * 1024,
            # Serialize once, send the same bytes to every client: per-message deflate would
            # compress each message again for every connection.
            ws_per_message_deflate=False,
            # Adds the transport sink through which the hub writes pre-encoded frames (app/live/frames.py).
            ws=FrameWebSocketProtocol,
            proxy_headers=True,
        )
        server = uvicorn.Server(config)

        async def serve() -> None:
            task = asyncio.create_task(server.serve())
            # uvicorn exposes `started` as a flag only, with no event to await.
            while not server.started and not task.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if server.started:
                port = server.servers[0].sockets[0].getsockname()[1]
                host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
                where = "embedded PostgreSQL" if embedded else "configured PostgreSQL"
                print(f"mobility-live is up at http://{host}:{port}/  (database: {where})", flush=True)
            await task

        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        if ingest_child is not None:
            ingest_child.stop()
        if embedded is not None:
            embedded.stop()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    return _run_server(_settings(args), run_ingest=True)


def cmd_serve(args: argparse.Namespace) -> int:
    return _run_server(_settings(args), run_ingest=False)


def cmd_ingest(args: argparse.Namespace) -> int:
    import signal

    from app import migrate
    from app.db import create_engine, resolve_database_url
    from ingest.runner import IngestService

    settings = _settings(args)
    url, embedded = resolve_database_url(settings.database_url, settings.pgdata)

    async def run() -> None:
        engine = create_engine(url, role="ingest")
        service = IngestService(settings=settings, engine=engine, database_url=url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.start()
        print(f"ingesting {len(service.feeds)} feed(s); Ctrl-C to stop", flush=True)
        try:
            await stop.wait()
        finally:
            await service.stop()
            await engine.dispose()

    try:
        migrate.upgrade(url)
        asyncio.run(run())
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from app import migrate
    from app.db import resolve_database_url

    settings = _settings(args)
    url, embedded = resolve_database_url(settings.database_url, settings.pgdata)
    try:
        if args.revision.startswith("-") or args.downgrade:
            migrate.downgrade(url, args.revision if args.downgrade else args.revision)
        else:
            migrate.upgrade(url, args.revision)
        print(f"database at revision {args.revision}")
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def cmd_feeds_check(args: argparse.Namespace) -> int:
    try:
        feeds = load_feeds(Path(args.file))
    except FeedsFileError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    from ingest import adapters

    known = set(adapters.formats())
    problems = [
        f"feed '{f.name}': unknown format '{f.format}'" for f in feeds if f.format and f.format not in known
    ]
    if problems:
        print(
            "\n".join(f"{args.file}: {p}; known: {', '.join(sorted(known))}" for p in problems),
            file=sys.stderr,
        )
        return 1
    for feed in feeds:
        print(f"ok  {feed.name:30} {feed.format or '(detect)':14} every {feed.interval:g}s  {feed.url}")
    print(f"{len(feeds)} feed(s) valid", file=sys.stderr)
    return 0


def _load_mapping(value: str | None) -> Any:
    if value is None:
        return None
    import tomllib

    from ingest.spec import FieldMapping

    path = Path(value)
    if not path.exists():
        return FieldMapping(preset=value)
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    if "mapping" in data and isinstance(data["mapping"], dict):
        data = data["mapping"]
    return FieldMapping.model_validate(data)


def cmd_parse(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ingest import adapters
    from ingest.records import PayloadError
    from ingest.spec import ParseContext

    configure_logging("text", "WARNING")
    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"mobility parse: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        mapping = _load_mapping(args.mapping)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"mobility parse: bad mapping {args.mapping}: {exc}", file=sys.stderr)
        return 2
    ctx = ParseContext(
        filename=None if args.file == "-" else Path(args.file).name, mapping=mapping, url=args.url
    )
    try:
        batch = adapters.parse_payload(body, ctx, format=args.format)
    except PayloadError as exc:
        print(f"mobility parse: {args.file}: {exc}", file=sys.stderr)
        return 1
    out = sys.stdout
    for record in batch.records:
        out.write(record.model_dump_json() + "\n")
    out.flush()
    counts = Counter(record.type for record in batch.records)
    summary = {
        "format": batch.format,
        "counts": dict(counts),
        "rejected": len(batch.rejected),
        "reasons": dict(Counter(r.reason for r in batch.rejected).most_common(20)),
    }
    if batch.next_url:
        summary["next_url"] = batch.next_url
    print(json.dumps(summary, ensure_ascii=False), file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from app.live import keys

    settings = _settings(args)
    return asyncio.run(keys.cli(args, settings))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mobility",
        description="mobility-live: live parking, traffic and bike-share feeds, stored and pushed live.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def server_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
        p.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
        p.add_argument("--feeds", dest="feeds_file", type=Path, help="feeds file (TOML); none runs the demo")
        p.add_argument("--data-dir", dest="data_dir", type=Path, help="where the embedded database lives")
        p.add_argument(
            "--demo", dest="demo", action="store_true", default=None, help="run the demo feeds too"
        )

    p = sub.add_parser("up", help="database, migrations, ingest, API and dashboard in one process")
    server_options(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("serve", help="API and dashboard only (pair with a separate `mobility ingest`)")
    server_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("ingest", help="pollers only: fetch feeds into the database")
    p.add_argument("--feeds", dest="feeds_file", type=Path, help="feeds file (TOML); none runs the demo")
    p.add_argument("--data-dir", dest="data_dir", type=Path)
    p.add_argument("--demo", dest="demo", action="store_true", default=None)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("migrate", help="apply database migrations (to head by default)")
    p.add_argument("revision", nargs="?", default="head")
    p.add_argument("--downgrade", action="store_true", help="downgrade to REVISION instead")
    p.add_argument("--data-dir", dest="data_dir", type=Path)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("feeds", help="feeds file tools")
    feeds_sub = p.add_subparsers(dest="feeds_command", required=True, metavar="SUBCOMMAND")
    c = feeds_sub.add_parser("check", help="validate a feeds file; names the line and field at fault")
    c.add_argument("file")
    c.set_defaults(func=cmd_feeds_check)

    p = sub.add_parser("parse", help="parse a payload file and print one JSON record per line")
    p.add_argument("file", help="payload file, or - for standard input")
    p.add_argument("--format", help="adapter name (detected from content when omitted)")
    p.add_argument("--mapping", help="mapping file (TOML/JSON) or a shipped preset name")
    p.add_argument("--url", help="URL the payload came from (for pagination and dataset detection)")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("keys", help="partner API keys for the live feed")
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    k = keys_sub.add_parser("create", help="create a key; the secret is printed once")
    k.add_argument("name")
    k.add_argument("--scopes", default="parking,traffic,bikes,events,feeds", help="comma-separated topics")
    k.add_argument("--max-connections", type=int, default=10)
    k.add_argument("--messages-per-minute", type=int, default=600)
    k.add_argument("--data-dir", dest="data_dir", type=Path)
    k.set_defaults(func=cmd_keys)
    k = keys_sub.add_parser("list", help="list keys with usage")
    k.add_argument("--data-dir", dest="data_dir", type=Path)
    k.set_defaults(func=cmd_keys)
    k = keys_sub.add_parser("revoke", help="revoke a key by id or prefix; live connections close within 5 s")
    k.add_argument("key")
    k.add_argument("--data-dir", dest="data_dir", type=Path)
    k.set_defaults(func=cmd_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
