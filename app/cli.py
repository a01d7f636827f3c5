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
import signal
import sys
import tomllib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from app.alerts import cli as alerts_cli
from app.forecast import cli as forecast_cli
from ingest import adapters, suggest, tryout
from ingest.feeds_file import FeedsFileError, load_feeds
from ingest.records import PayloadError
from ingest.spec import FeedSpec, FieldMapping, ParseContext
from kernel.logging_setup import configure_logging
from kernel.settings import Settings, get_settings

# The server, ingest and database stacks are imported inside the commands that run them:
# `mobility feeds check` and `mobility parse` start in ~0.2 s, and would take ~1 s more
# with them (measured by importing app.main ~0.6 s, ingest.runner ~0.8 s, app.migrate ~0.6 s
# and kernel.db ~0.4 s in a fresh interpreter). Each such import says "deferred: CLI startup".

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


@contextmanager
def _database(settings: Settings) -> Iterator[tuple[str, Any]]:
    """The database URL the settings name (the embedded PostgreSQL started if they name none),
    and that embedded server stopped again however the command ends."""
    from kernel.db import resolve_database_url  # deferred: CLI startup

    url, embedded = resolve_database_url(settings.database_url, settings.pgdata)
    try:
        yield url, embedded
    finally:
        if embedded is not None:
            embedded.stop()


def _run_server(settings: Settings, *, run_ingest: bool) -> int:
    import uvicorn  # deferred: CLI startup

    from app import migrate  # deferred: CLI startup
    from app.ingest_process import IngestProcess  # deferred: CLI startup
    from app.main import create_app  # deferred: CLI startup
    from app.server import uvicorn_config  # deferred: CLI startup

    ingest_child: IngestProcess | None = None
    with _database(settings) as (url, embedded):
        try:
            migrate.upgrade(url)
            if run_ingest and settings.up_ingest_process:
                # Parsing in its own process: a large poll never stalls the hub (app/ingest_process.py).
                ingest_child = IngestProcess(settings, url)
                ingest_child.start()
                run_ingest = False
            app = create_app(
                settings,
                database_url=url,
                run_ingest=run_ingest,
                ingest_metrics=ingest_child.metrics_text if ingest_child is not None else None,
            )
            config = uvicorn_config(app, settings, host=settings.host, port=settings.port)
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
                supervisor = None
                if ingest_child is not None:  # a dead ingest child is restarted, never left dead
                    supervisor = asyncio.create_task(ingest_child.supervise(lambda: server.should_exit))
                try:
                    await task
                finally:
                    if supervisor is not None:
                        supervisor.cancel()

            asyncio.run(serve())
        except KeyboardInterrupt:
            pass
        finally:
            if ingest_child is not None:
                ingest_child.stop()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    return _run_server(_settings(args), run_ingest=True)


def cmd_serve(args: argparse.Namespace) -> int:
    return _run_server(_settings(args), run_ingest=False)


def cmd_ingest(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server  # deferred: CLI startup

    from app import migrate  # deferred: CLI startup
    from ingest import metrics as ingest_metrics  # deferred: CLI startup
    from ingest.runner import IngestService  # deferred: CLI startup
    from kernel.db import create_engine  # deferred: CLI startup

    settings = _settings(args)

    async def run(url: str) -> None:
        engine = create_engine(
            url,
            role="ingest",
            pool_size=settings.db_pool_ingest,
            pool_timeout_s=settings.db_pool_timeout_s,
            statement_timeout_s=settings.db_ingest_statement_timeout_s,
            idle_in_transaction_timeout_s=settings.db_idle_in_transaction_timeout_s,
        )
        service = IngestService(settings=settings, engine=engine, database_url=url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.start()
        if settings.ingest_metrics_port is not None:
            # The pollers' metrics: this process has no API whose /metrics could carry them.
            port = settings.ingest_metrics_port
            start_http_server(port, addr=settings.host, registry=ingest_metrics.REGISTRY)
            print(f"metrics on http://{settings.host}:{port}/metrics", flush=True)
        print(f"ingesting {len(service.feeds)} feed(s); Ctrl-C to stop", flush=True)
        try:
            await stop.wait()
        finally:
            await service.stop()
            await engine.dispose()

    with _database(settings) as (url, _):
        migrate.upgrade(url)
        asyncio.run(run(url))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from app import migrate  # deferred: CLI startup

    with _database(_settings(args)) as (url, _):
        if args.revision.startswith("-") or args.downgrade:
            migrate.downgrade(url, args.revision if args.downgrade else args.revision)
        else:
            migrate.upgrade(url, args.revision)
        print(f"database at revision {args.revision}")
    return 0


def cmd_feeds_check(args: argparse.Namespace) -> int:
    try:
        feeds = load_feeds(Path(args.file))
    except FeedsFileError as exc:
        print(str(exc), file=sys.stderr)
        return 1
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


def _pick_feed(feeds_file: str, name: str | None, command: str) -> Any:
    """The feed NAME of a feeds file; NAME may be left out when the file holds one feed."""
    feeds = load_feeds(Path(feeds_file))
    if name is None:
        if len(feeds) != 1:
            names = ", ".join(f.name for f in feeds) or "none"
            raise FeedsFileError(f"{feeds_file} holds {len(feeds)} feeds ({names}): name one with --feed")
        return feeds[0]
    for feed in feeds:
        if feed.name == name:
            return feed
    names = ", ".join(f.name for f in feeds) or "none"
    raise FeedsFileError(f"{command}: no feed {name!r} in {feeds_file} (feeds: {names})")


def _read_source(source: str, feed: Any) -> bytes:
    """A payload from a file, or from a URL fetched with the feed's headers, timeout and size limit."""
    if not source.lower().startswith(("http://", "https://")):
        return Path(source).read_bytes()
    with httpx.Client(follow_redirects=True, timeout=feed.timeout, headers=feed.headers) as client:
        with client.stream("GET", source) as response:
            response.raise_for_status()
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > feed.max_bytes:
                    raise OSError(f"{source}: more than the feed's max_bytes ({feed.max_bytes})")
                chunks.append(chunk)
    return b"".join(chunks)


def cmd_feeds_try(args: argparse.Namespace) -> int:
    configure_logging("text", "WARNING")
    try:
        feed = _pick_feed(args.file, args.feed, "feeds try")
    except FeedsFileError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    settings = get_settings()
    parts: list[tryout.Part] = []
    try:
        if feed.site_table is not None:
            table = feed.site_table
            source = args.site_table or table.url
            parts.append(
                tryout.Part(
                    "site_table",
                    source,
                    _read_source(source, feed),
                    table.mapping,
                    table.format or ("generic" if table.mapping else None),
                )
            )
        if not args.no_static:
            for url in feed.static_urls:
                parts.append(tryout.Part("static", str(url), _read_source(str(url), feed), None, feed.format))
        live = args.source or str(feed.url)
        parts.append(tryout.Part("live", live, _read_source(live, feed), None, feed.format))
    except (OSError, httpx.HTTPError) as exc:
        print(f"mobility feeds try: cannot read: {exc}", file=sys.stderr)
        return 2
    max_age_days = args.max_age_days if args.max_age_days is not None else settings.max_age_days
    try:
        report = tryout.try_feed(
            feed,
            parts,
            now=datetime.now(UTC),
            max_age=timedelta(days=max_age_days),
            max_future_skew=timedelta(seconds=settings.max_future_skew_s),
            fetch=lambda url: _read_source(url, feed),
        )
    except (OSError, httpx.HTTPError) as exc:
        print(f"mobility feeds try: cannot read a next page: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, default=str, indent=2))
    else:
        sys.stdout.write(tryout.render(report))
    return 0 if report.usable else 1


def cmd_feeds_suggest(args: argparse.Namespace) -> int:
    configure_logging("text", "WARNING")
    try:
        body = _read_source(args.source, FeedSpec(name="suggest", url=args.source))
    except (OSError, httpx.HTTPError) as exc:
        print(f"mobility feeds suggest: cannot read {args.source}: {exc}", file=sys.stderr)
        return 2
    try:
        result = suggest.suggest(body, args.source)
    except PayloadError as exc:
        print(f"mobility feeds suggest: {args.source}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(suggest.render(result, args.name))
    return 0


def _load_mapping(value: str | None) -> Any:
    if value is None:
        return None
    path = Path(value)
    if not path.exists():
        return FieldMapping(preset=value)
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    if isinstance(data, dict) and isinstance(data.get("feed"), list):
        raise ValueError("this is a feeds file ([[feed]] tables): use --feeds FILE [--feed NAME]")
    if "mapping" in data and isinstance(data["mapping"], dict):
        data = data["mapping"]
    unknown = sorted(set(data) - set(FieldMapping.model_fields)) if isinstance(data, dict) else []
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; allowed: {', '.join(FieldMapping.model_fields)}")
    return FieldMapping.model_validate(data)


def cmd_parse(args: argparse.Namespace) -> int:
    configure_logging("text", "WARNING")
    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"mobility parse: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    feed = None
    if args.feeds:
        if args.mapping:
            print("mobility parse: give --feeds or --mapping, not both", file=sys.stderr)
            return 2
        try:
            feed = _pick_feed(args.feeds, args.feed, "parse")
        except FeedsFileError as exc:
            print(f"mobility parse: {exc}", file=sys.stderr)
            return 2
    elif args.feed:
        print("mobility parse: --feed names a feed of the --feeds file", file=sys.stderr)
        return 2
    try:
        mapping = _load_mapping(args.mapping)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"mobility parse: bad mapping {args.mapping}: {exc}", file=sys.stderr)
        return 2
    ctx = ParseContext(
        filename=None if args.file == "-" else Path(args.file).name, mapping=mapping, url=args.url, feed=feed
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
    if batch.warnings:
        summary["warnings"] = batch.warnings
    if batch.next_url:
        summary["next_url"] = batch.next_url
    print(json.dumps(summary, ensure_ascii=False), file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from app.live import keys_cli  # deferred: CLI startup

    settings = _settings(args)
    return asyncio.run(keys_cli.cli(args, settings))


def cmd_alerts(args: argparse.Namespace) -> int:
    return asyncio.run(alerts_cli.cli(args, _settings(args)))


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
    c = feeds_sub.add_parser(
        "try",
        help="apply one feed as the poller would and report what its mapping matched; "
        "exit 1 when nothing usable comes out",
    )
    c.add_argument("file", help="feeds file (TOML)")
    c.add_argument("--feed", help="feed name (optional when the file holds one feed)")
    c.add_argument("source", nargs="?", help="payload file or URL instead of the feed's url")
    c.add_argument("--site-table", help="site table file or URL instead of the feed's site_table.url")
    c.add_argument("--no-static", action="store_true", help="do not fetch the feed's static_urls")
    c.add_argument(
        "--max-age-days",
        type=float,
        help="age limit of readings (default: the setting, 7); old captures need more",
    )
    c.add_argument("--json", action="store_true", help="the report as JSON")
    c.set_defaults(func=cmd_feeds_try)
    c = feeds_sub.add_parser(
        "suggest",
        help="print a draft feeds file for a sample payload (file or URL), with its reasoning as comments",
    )
    c.add_argument("source", help="payload file or URL: JSON, GeoJSON, ArcGIS, CKAN, CSV, XML")
    c.add_argument("--name", help="feed name (default: from the file name)")
    c.set_defaults(func=cmd_feeds_suggest)

    p = sub.add_parser("parse", help="parse a payload file and print one JSON record per line")
    p.add_argument("file", help="payload file, or - for standard input")
    p.add_argument("--format", help="adapter name (detected from content when omitted)")
    p.add_argument(
        "--mapping", help="mapping file (TOML/JSON, a bare mapping table) or a shipped preset name"
    )
    p.add_argument("--feeds", help="feeds file: apply its feed's format and mapping (see --feed)")
    p.add_argument("--feed", help="feed name in --feeds (optional when the file holds one feed)")
    p.add_argument("--url", help="URL the payload came from (for pagination and dataset detection)")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("keys", help="partner API keys for the live feed")
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    k = keys_sub.add_parser("create", help="create a key; the secret is printed once")
    k.add_argument("name")
    k.add_argument(
        "--scopes", default="parking,traffic,bikes,events,feeds,alerts", help="comma-separated topics"
    )
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

    forecast_cli.add_parser(sub)
    alerts_cli.add_parser(sub, func=cmd_alerts)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `feeds try FEEDS --feed NAME SOURCE`: argparse binds positionals before the option only.
    if extra and getattr(args, "func", None) is cmd_feeds_try and args.source is None and len(extra) == 1:
        if not extra[0].startswith("-"):
            args.source, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
