"""Starting and serving a service's Flask app with waitress on every configured address, shared by both
services.

Both loopbacks are listed explicitly (`127.0.0.1:P [::1]:P`): `0.0.0.0` would refuse IPv6 clients
(the troubleshooting log's `ECONNREFUSED ::1:6102`) and `::` under waitress refuses IPv4 ones.

waitress' own limits are set from the app and the settings, not left at its defaults (issue 13): a body
larger than the app takes is refused as soon as its Content-Length (or a chunked body passing the
limit) says so, never read and spooled to disk first (its default limit is 1 GiB); up to
`max_connections` connections are accepted (its default, 100, let 100 half-sent requests stop the
service), with poll() so descriptors past 1024 work; a connection silent for `idle_timeout_s` is
closed. Its own error answers (413, 400 for a malformed request) are JSON like every other error.
"""

from __future__ import annotations

import errno
import json
import logging
import resource
import socket
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable

from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from raishared.errors import HintedError
from raishared.settings import Settings, host_port, load_settings
from services.waiting import BASE_THREADS

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


def listen_spec(hosts: Iterable[str], port: int) -> str:
    """waitress' `listen` value: `127.0.0.1:6102 [::1]:6102`."""
    return " ".join(host_port(h, port) for h in hosts)


def configure_logging() -> None:
    """One line per record on stderr (the supervisor sends it into <home>/logs/NAME.log)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # waitress warns "Task queue depth is N" on every request while all threads are busy: under a
    # steady load that is one log line per request (measured: 1758 lines in a 5 s bench run).
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


class JsonErrorTask(ErrorTask):
    """waitress' answer to a request it refuses before the app sees it, as `{"error", "message"}`."""

    CODES = {400: "bad_request", 413: "payload_too_large", 431: "request_header_fields_too_large",
             501: "not_implemented"}

    def execute(self) -> None:
        error = self.request.error  # type: ignore[attr-defined]  # types-waitress: the parser holding the Error
        if error.code == 413:
            message = f"the body is larger than {self.channel.server.adj.max_request_body_size - 1} bytes"
        else:
            message = f"{error.reason}: {error.body}"
        body = json.dumps({"error": self.CODES.get(error.code, "bad_request"), "message": message}).encode()
        self.status = f"{error.code} {error.reason}"
        self.channel.linger = True  # type: ignore[attr-defined]  # a JsonErrorChannel: part of the body is unread
        self.response_headers = [*self.response_headers, ("Content-Type", "application/json")]
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    """waitress' channel with JSON error answers and a lingering close after them (RFC 9112 9.6).

    A body refused from its headers is still on its way when the answer is sent: closing then makes the
    kernel reset the connection, and the client loses the 413 it was sent. So the channel shuts its
    sending side, reads and drops what still comes (at most LINGER_BYTES, and no longer than the idle
    timeout) and closes when the client does.
    """

    error_task_class = JsonErrorTask
    LINGER_BYTES = 64 * 1024 * 1024
    linger = False  # set by JsonErrorTask
    lingering = False
    dropped = 0

    def handle_close(self) -> None:
        if self.linger and not self.lingering and self.socket is not None and not self.total_outbufs_len:
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                super().handle_close()
                return
            self.lingering, self.will_close = True, False
            return
        super().handle_close()

    def readable(self) -> bool:
        return self.lingering or super().readable()

    def handle_write(self) -> None:
        if self.lingering:  # the idle timeout asked to close
            super().handle_close()
            return
        super().handle_write()

    def handle_read(self) -> None:
        if not self.lingering:
            super().handle_read()
            return
        data = self.recv(self.adj.recv_bytes)  # b"" at the client's close: recv has closed the channel
        self.dropped += len(data)
        if data and self.dropped > self.LINGER_BYTES:
            super().handle_close()


def waitress_options(app: Flask, settings: Settings | None) -> dict[str, Any]:
    """waitress' limits for `app`: its body limit (MAX_CONTENT_LENGTH; waitress refuses a body of exactly
    its limit, so one more), and the connection limit and idle timeout of the settings."""
    connections = settings.max_connections if settings else 1000
    idle = settings.idle_timeout_s if settings else 30
    options: dict[str, Any] = {"connection_limit": connections, "channel_timeout": idle,
               "cleanup_interval": max(1, min(30, idle // 2)), "asyncore_use_poll": True}
    limit = app.config.get("MAX_CONTENT_LENGTH") if hasattr(app, "config") else None
    if limit:
        options["max_request_body_size"] = limit + 1
    return options


def raise_open_files_limit(connections: int) -> None:
    """Raise the soft limit of open descriptors towards the hard one, so `connections` sockets fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256  # listeners, database connections, logs
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < wanted:
            log.warning("only %d open files allowed (hard limit): fewer than %d connections fit", new, connections)


def serve(app: Flask, hosts: Iterable[str], port: int, name: str, threads: int = 8,
          settings: Settings | None = None) -> None:
    """Serve `app` until stopped; a taken port ends the process with one clear line and exit code 1."""
    from waitress.server import BaseWSGIServer, create_server

    spec = listen_spec(hosts, port)
    options = waitress_options(app, settings)
    # Every thread may hold a connection, and each waiting chat is one: the limit stays above the threads.
    options["connection_limit"] = max(options["connection_limit"], threads + 100)
    raise_open_files_limit(options["connection_limit"])
    log.info("%s listening on %s (%d threads)", name, spec, threads)
    try:
        sockets: dict[int, Any] = {}
        server = create_server(app, map=sockets, listen=spec, threads=threads, ident=name, **options)
        for dispatcher in list(sockets.values()):
            if isinstance(dispatcher, BaseWSGIServer):
                dispatcher.channel_class = JsonErrorChannel
        server.run()
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
            log.error("%s cannot listen on %s: %s", name, spec, exc.strerror)
            sys.exit(1)
        raise


def run_service(create_app: Callable[[Settings], Flask], name: str, settings_key: str) -> int:
    """`python -m services.X`: log to stderr, load the settings and build the app with `create_app` (a bad
    setting is one line in the log and exit code 1, not a traceback), then serve it on the addresses
    `<settings_key>_hosts` and port `<settings_key>_port` of the settings until stopped, with
    `<settings_key>_max_waiting` threads for LLM-bound requests and BASE_THREADS for the rest
    (services/waiting.py)."""
    configure_logging()
    try:
        settings = load_settings()
        app = create_app(settings)
    except HintedError as exc:
        log.error("%s cannot start: %s", name, exc)
        return 1
    threads = BASE_THREADS + getattr(settings, f"{settings_key}_max_waiting")
    serve(app, getattr(settings, f"{settings_key}_hosts"), getattr(settings, f"{settings_key}_port"), name,
          threads=threads, settings=settings)
    return 0
