"""LLM engine checks: which engine serves and why, and with a Gemini key a minimal real call (log steps 21, 23-24).

The log's step 21: a key sat in a `.env` the server never read, and the mock silently stood in.
`llm.engine` compares the engine the LLM API reports with what raictl's settings imply;
`llm.gemini` makes one minimal real call (through the running LLM API's `?deep=1` health, else
directly with the same engine code) and gives the reason when it fails. The key is only ever masked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raictl.doctor import observe
from raictl.doctor.context import CheckContext
from raictl.doctor.registry import Result, check
from raishared.settings import mask_secret

if TYPE_CHECKING:
    from raishared.settings import Settings

CALL_TIMEOUT = 6.0
NO_ENGINE = "no GEMINI_API_KEY, OPENAI_BASE_URL or OPENAI_API_KEY"
NO_ENGINE_HINT = ("set GEMINI_API_KEY, or OPENAI_BASE_URL for a local model server (Ollama: "
                  "http://127.0.0.1:11434/v1), in the environment or .env (see config.env_file)")
FIRST_BYTES = 120  # of a reply that is not JSON, shown in the finding


def _key_text(s: Settings) -> str:
    return f"{mask_secret(s.gemini_api_key)} from {s.sources.get('gemini_api_key', '?')}"


@check("llm.engine", "LLM engine and why")
def engine(ctx: CheckContext) -> Result:
    s = ctx.settings
    h = observe.health(ctx, "llm_api")
    if not h.service_matches:
        if s.resolved_engine == "mock" and s.llm_engine == "auto":
            return ctx.warn(f"the LLM API is not answering; once started the mock would stand in: {NO_ENGINE}",
                            hint=NO_ENGINE_HINT)
        return ctx.skip(f"the LLM API is not answering; with these settings it would use {s.resolved_engine}")
    name, model, reason = h.doc.get("engine"), h.doc.get("model"), h.doc.get("fallback_reason")
    if name == "mock" and s.resolved_engine != "mock":
        return ctx.fail(f"the LLM API serves the mock ({reason or 'LLM_ENGINE=mock'}), but raictl's settings "
                        f"choose {s.resolved_engine} ({_engine_source(s)}): it was started without it",
                        hint="`raictl restart llm_api` hands it the current settings")
    if name == "mock" and reason:
        return ctx.warn(f"the mock engine stands in for a real one: {reason}", hint=NO_ENGINE_HINT)
    if name == "mock":
        return ctx.ok(f"mock engine, chosen by LLM_ENGINE=mock ({s.sources.get('llm_engine', 'default')})")
    if h.doc.get("last_error"):
        return ctx.fail(f"{name} ({model}) is degraded: {h.doc['last_error']}",
                        hint=_hint(h.doc["last_error"], str(name)))
    source = _engine_source(s, name)
    return ctx.ok(f"{name}, model {model}" + (f", {source}" if source else ""))


def _engine_source(s: Settings, name: str | None = None) -> str:
    """What in the settings makes the engine `name` (default: the one they choose): a key, a server."""
    name = name or s.resolved_engine
    if name == "gemini" and s.gemini_api_key:
        return f"key {_key_text(s)}"
    if name == "openai":
        from services.llm_api.openai_engine import OPENAI_URL

        key = f", key {mask_secret(s.openai_api_key)}" if s.openai_api_key else ""
        return f"server {s.openai_base_url or OPENAI_URL}{key}"
    return ""


def _hint(reason: str, engine: str = "gemini") -> str:
    if engine == "openai":
        return "`raictl doctor llm.openai` asks the server what is wrong"
    lowered = reason.lower()
    if "importerror" in lowered or "modulenotfounderror" in lowered:
        return "install google-genai into raictl's interpreter (pip install google-genai), then `raictl restart llm_api`"
    if "api key" in lowered or "gemini_api_key" in lowered:
        return "check GEMINI_API_KEY (a new key: https://aistudio.google.com/apikey)"
    if "429" in lowered or "quota" in lowered or "rate" in lowered:
        return "quota or rate limit: wait, or check the key's plan"
    if "model" in lowered and "404" in lowered:
        return "check GEMINI_MODEL"
    return "network or upstream trouble: check connectivity and GEMINI_BASE_URL"


def _direct_call(s: Settings, key: str) -> str | None:
    """One minimal generate with the LLM API's own engine code; the failure reason, or None (a
    google-genai that does not import is the reason, as the LLM API would crash on it at start)."""
    from services.llm_api.engines import EngineError, GeminiEngine
    from services.llm_api.state import PROBE

    try:
        GeminiEngine(key, s.gemini_model, s.gemini_base_url, CALL_TIMEOUT).generate(PROBE)
    except EngineError as exc:
        return exc.message
    except ImportError as exc:
        return f"google-genai does not import: {type(exc).__name__}: {exc}"
    return None


def _deep_health(ctx: CheckContext, url: str) -> dict[str, Any] | Result:
    """The JSON document of the LLM API's deep health (one real Gemini call), or the failed Result."""
    from raictl.chat.client import request

    ctx.doing(f"GET {url} (one real Gemini call)")
    try:
        reply = request("GET", url, timeout=CALL_TIMEOUT)
    except OSError as exc:
        return ctx.fail(f"the LLM API did not finish a real call: {exc.strerror or exc}", hint=_hint(str(exc)))
    if not isinstance(reply.body, dict):  # e.g. a proxy's or another program's text page on that port
        shown = str(reply.body).strip()[:FIRST_BYTES] or "an empty body"
        return ctx.fail(f"GET {url} answered HTTP {reply.status} with a body that is not JSON: {shown!r}",
                        hint="is the LLM API what listens there? `raictl status`, `raictl logs llm_api`")
    return reply.body


@check("llm.gemini", "Gemini answers a minimal call", timeout=CALL_TIMEOUT + 2)
def gemini(ctx: CheckContext) -> Result:
    s = ctx.settings
    h = observe.health(ctx, "llm_api")
    if h.url and h.service_matches and h.doc.get("engine") == "gemini":
        doc = _deep_health(ctx, h.url + "?deep=1")
        if not isinstance(doc, dict):
            return doc
        via, error = f"through the LLM API ({doc.get('model')})", doc.get("last_error")
    elif s.gemini_api_key and not h.service_matches:
        ctx.doing(f"calling Gemini model {s.gemini_model} directly")
        via, error = f"directly ({s.gemini_model})", _direct_call(s, s.gemini_api_key)
    else:
        return ctx.skip("no Gemini key in use: nothing to call")
    if error:
        return ctx.fail(f"a minimal real call {via} failed: {error}", hint=_hint(error))
    return ctx.ok(f"a minimal real call {via} succeeded (key {mask_secret(s.gemini_api_key)})")
