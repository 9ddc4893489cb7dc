"""Starting and serving a service's Flask app with waitress on every configured address, shared by both
services.

Both loopbacks are listed explicitly (`127.0.0.1:P [::1]:P`): `0.0.0.0` would refuse IPv6 clients
(the troubleshooting log's `ECONNREFUSED ::1:6102`) and `::` under waitress refuses IPv4 ones.
"""

from __future__ import annotations

import errno
import logging
import sys
from typing import Callable, Iterable

from raictl.errors import RaictlError
from raictl.settings import Settings, host_port, load_settings

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


def serve(app, hosts: Iterable[str], port: int, name: str, threads: int = 8) -> None:
    """Serve `app` until stopped; a taken port ends the process with one clear line and exit code 1."""
    from waitress import serve as waitress_serve

    spec = listen_spec(hosts, port)
    log.info("%s listening on %s", name, spec)
    try:
        waitress_serve(app, listen=spec, threads=threads, ident=name)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
            log.error("%s cannot listen on %s: %s", name, spec, exc.strerror)
            sys.exit(1)
        raise


def run_service(create_app: Callable[[Settings], object], name: str, settings_key: str, threads: int = 8) -> int:
    """`python -m services.X`: log to stderr, load the settings and build the app with `create_app` (a bad
    setting is one line in the log and exit code 1, not a traceback), then serve it on the addresses
    `<settings_key>_hosts` and port `<settings_key>_port` of the settings until stopped."""
    configure_logging()
    try:
        settings = load_settings()
        app = create_app(settings)
    except RaictlError as exc:
        log.error("%s cannot start: %s", name, exc)
        return 1
    serve(app, getattr(settings, f"{settings_key}_hosts"), getattr(settings, f"{settings_key}_port"), name,
          threads=threads)
    return 0
