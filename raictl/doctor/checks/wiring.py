"""Wiring checks: the LLM URL the RAI API uses reaches the LLM API that actually runs (log steps 17, 22:
the bridge called 6001 while the server ran on 6101, then 6201, then 6301).

`wiring.config` compares the settings with each other; `wiring.live` compares what the running
services report about themselves: the RAI API's `llm_url` (its health, else its environment) must
answer as the LLM API, and be the LLM API that raictl's settings point at.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from raictl.doctor import observe
from raictl.doctor.context import CheckContext
from raictl.doctor.registry import Result, check
from raictl.supervisor.identity import environ_of
from raishared.settings import env_var

_LOOPBACK_NAMES = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "::"}


@check("wiring.config", "LLM_API_URL matches the LLM API's port")
def config(ctx: CheckContext) -> Result:
    s = ctx.settings
    if s.rai_api_port == s.llm_api_port:
        return ctx.fail(f"RAI_API_PORT and LLM_API_PORT are both {s.rai_api_port}",
                        hint="give each service its own port")
    parts = urlsplit(s.llm_api_url)
    source = s.sources.get("llm_api_url", "default")
    if parts.hostname not in _LOOPBACK_NAMES:
        return ctx.ok(f"LLM_API_URL={s.llm_api_url} ({source}): a remote LLM API, not supervised here")
    if parts.port != s.llm_api_port:
        return ctx.fail(f"LLM_API_URL={s.llm_api_url} ({source}) points at port {parts.port}, but the LLM API "
                        f"listens on LLM_API_PORT={s.llm_api_port} ({s.sources.get('llm_api_port', 'default')})",
                        hint="unset LLM_API_URL: it is derived from LLM_API_PORT (set it only for a remote LLM API)")
    if parts.hostname == "localhost":
        return ctx.warn(f"LLM_API_URL={s.llm_api_url} uses `localhost`, whose first address may not accept",
                        hint="use an IP literal, e.g. http://127.0.0.1:%d" % s.llm_api_port)
    return ctx.ok(f"the RAI API calls {s.llm_api_url} ({source})")


def rai_llm_url(ctx: CheckContext) -> tuple[str | None, str]:
    """(URL, where it was read) of the LLM API the running RAI API calls."""
    reported = observe.health(ctx, "rai_api").doc.get("llm_url")
    if reported:
        return reported, "its health"
    st = observe.status(ctx, "rai_api")
    if st and st.pid:
        url = environ_of(st.pid).get(env_var("llm_api_url"))
        if url:
            return url, f"its environment (pid {st.pid})"
    return None, ""


def who_answers(url: str) -> str:
    """The `service` the health at `url` names, or what answered instead."""
    from raictl.chat.client import request

    try:
        reply = request("GET", url.rstrip("/") + "/api/health", timeout=observe.HEALTH_TIMEOUT)
    except OSError as exc:
        return f"no LLM API ({exc.strerror or exc})"
    except ValueError:  # urllib's "unknown url type": a service started with settings that no longer load
        return "not an http:// URL"
    if not isinstance(reply.body, dict):
        return f"HTTP {reply.status}, not JSON"
    return str(reply.body.get("service"))


@check("wiring.live", "RAI API reaches the running LLM API")
def live(ctx: CheckContext) -> Result:
    rai = observe.health(ctx, "rai_api")
    if not rai.service_matches:
        return ctx.skip("the RAI API is not answering (see rai_api.health)")
    url, where = rai_llm_url(ctx)
    if url is None:
        return ctx.skip("the RAI API does not say which LLM API it calls")
    ctx.doing(f"GET {url}/api/health")
    answer = who_answers(url)
    llm = observe.health(ctx, "llm_api")
    running_at = llm.base if llm.service_matches else None
    if answer != "llm-api":
        there = (f"; the LLM API runs at {running_at}" if running_at
                 else "; no LLM API answers where raictl's settings say either (see llm_api.*)")
        return ctx.fail(f"the RAI API calls {url} (from {where}): {answer}{there}",
                        hint="restart the RAI API with the current settings: `raictl restart rai_api` "
                             "(`wiring.config` says whether LLM_API_URL itself is wrong)")
    status = rai.doc.get("llm_status")
    if status != "ok":
        return ctx.warn(f"the RAI API calls {url}, which answers as llm-api, but reports llm_status={status}",
                        hint="see llm.engine")
    return ctx.ok(f"the RAI API calls {url} (from {where}), which answers as llm-api; llm_status=ok")
