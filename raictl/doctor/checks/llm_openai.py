"""`llm.openai`: the OpenAI-compatible server the openai engine uses (Ollama, llama.cpp, vLLM, LM Studio, OpenAI).

Three questions, asked with the engine's own code (`OpenAIEngine.list_models`, the same SDK and error
mapping the LLM API uses): does the base URL answer `GET {base}/models`, does it list OPENAI_MODEL, and
is the key accepted. And the log's `::1` trap seen from the client side: Ollama binds 127.0.0.1 only
by default, so where `localhost` resolves to `::1` first a client of `http://localhost:11434` is refused
on `[::1]:11434` first. Python's client then tries the next address; many others (Node's, before v20)
stop there with `ECONNREFUSED ::1:11434`. The finding names the refused address and the fix.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit, urlunsplit

from raictl.doctor.checks.host import localhost_addresses
from raictl.doctor.context import CheckContext
from raictl.doctor.registry import Result, check
from raishared.settings import host_port, mask_secret

if TYPE_CHECKING:
    from raishared.settings import Settings

CALL_TIMEOUT = 5.0
SHOWN_MODELS = 8
OTHER_LOOPBACK = {"::1": "127.0.0.1", "127.0.0.1": "::1"}


@dataclass(frozen=True)
class Trap:
    """The first address a client tries refuses, while another address of the same server accepts."""

    summary: str
    hint: str


def _port_of(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def client_order(host: str, port: int) -> list[str]:
    """The addresses a client of `host` tries, in order (`localhost` as doctor's host.localhost sees it)."""
    if _is_ip(host):
        return [host]
    if host == "localhost":
        return localhost_addresses(port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def first_address_trap(base_url: str) -> Trap | None:
    """A Trap when the first address of the base URL's host refuses and another (or the other loopback) accepts."""
    from raictl.supervisor.probes import probe_listen

    parts = urlsplit(base_url)
    port, order = _port_of(parts), client_order(parts.hostname or "", _port_of(parts))
    if not order:
        return None
    first = probe_listen(order[0], port)
    if first.ok:
        return None
    others = [a for a in dict.fromkeys([*order[1:], OTHER_LOOPBACK.get(order[0], "")]) if a and a != order[0]]
    accepting = next((a for a in others if probe_listen(a, port).ok), None)
    if accepting is None:
        return None
    tried = f"{parts.hostname} resolves to {order[0]} first, and " if parts.hostname != order[0] else ""
    fixed = urlunsplit(parts._replace(netloc=host_port(accepting, port)))
    return Trap(f"{tried}{host_port(order[0], port)} refuses ({first.detail}): the server listens on {accepting} "
                f"only (Ollama binds 127.0.0.1 by default; the log's ECONNREFUSED ::1)",
                f"set OPENAI_BASE_URL={fixed}, or have the server listen on {order[0]} too")


def model_listed(model: str, models: list[str]) -> bool:
    """Ollama lists `llama3.2:latest` for the `llama3.2` it serves."""
    return model in models or f"{model}:latest" in models


def _key_text(s: Settings) -> str:
    if not s.openai_api_key:
        return "no key set (a local server needs none)"
    return f"key {mask_secret(s.openai_api_key)} accepted"


def _error_hint(code: str) -> str:
    return {"upstream_auth": "set or fix OPENAI_API_KEY (environment or .env), then `raictl restart llm_api`",
            "upstream_not_found": "check OPENAI_BASE_URL: it usually ends in /v1 (Ollama: http://127.0.0.1:11434/v1)",
            "upstream_rate_limited": "wait, or check the key's plan"}.get(
        code, "is the server running? (Ollama: `ollama serve`); check OPENAI_BASE_URL")


def _models_finding(ctx: CheckContext, base_url: str, model: str, models: list[str]) -> Result:
    shown = ", ".join(models[:SHOWN_MODELS]) + (f" and {len(models) - SHOWN_MODELS} more" if len(models) > SHOWN_MODELS else "")
    return ctx.fail(f"{base_url} answers but does not list the model {model!r} (it lists {shown or 'no model'})",
                    hint=f"set OPENAI_MODEL to one it lists, or fetch it (Ollama: `ollama pull {model}`)")


@check("llm.openai", "OpenAI-compatible server answers", timeout=CALL_TIMEOUT + 2)
def openai_server(ctx: CheckContext) -> Result:
    from services.llm_api.engines import EngineError
    from services.llm_api.openai_engine import OpenAIEngine

    s = ctx.settings
    if s.resolved_engine != "openai":
        return ctx.skip(f"the engine is {s.resolved_engine}: no OpenAI-compatible server in use")
    if not (s.openai_base_url or s.openai_api_key):
        return ctx.fail("LLM_ENGINE=openai but neither OPENAI_BASE_URL nor OPENAI_API_KEY is set",
                        hint="set OPENAI_BASE_URL (Ollama: http://127.0.0.1:11434/v1), or OPENAI_API_KEY for OpenAI")
    engine = OpenAIEngine(s.openai_base_url, s.openai_api_key, s.openai_model, CALL_TIMEOUT)
    ctx.doing(f"connecting to {engine.base_url}")
    trap = first_address_trap(engine.base_url)
    ctx.doing(f"GET {engine.base_url}/models")
    try:
        models = engine.list_models()
    except EngineError as exc:
        if trap:
            return ctx.fail(f"{trap.summary}; {exc.message}", hint=trap.hint)
        return ctx.fail(exc.message, hint=_error_hint(exc.code))
    if not model_listed(s.openai_model, models):
        return _models_finding(ctx, engine.base_url, s.openai_model, models)
    if trap:
        return ctx.warn(f"{trap.summary}; raictl's client falls back to the next address, other clients may not",
                        hint=trap.hint)
    return ctx.ok(f"{engine.base_url} answers and lists {s.openai_model}; {_key_text(s)}")
