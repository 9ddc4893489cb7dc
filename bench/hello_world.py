"""The baseline of bench_api.py: a bare Flask app served by waitress like our services are.

`python -m bench.hello_world` serves `GET /api/health` -> {"status": "ok"} on BENCH_HELLO_PORT, on
both loopbacks, with the same waitress thread count as the RAI API.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify

from raishared.settings import DEFAULTS
from services.serving import serve
from services.waiting import BASE_THREADS

THREADS = BASE_THREADS + DEFAULTS["rai_api_max_waiting"]  # as `python -m services.rai_api` runs by default


def create_app() -> Flask:
    app = Flask(__name__)
    app.add_url_rule("/api/health", "health", lambda: jsonify(status="ok"))
    return app


if __name__ == "__main__":
    serve(create_app(), ("127.0.0.1", "::1"), int(os.environ["BENCH_HELLO_PORT"]), "hello-world", threads=THREADS)
