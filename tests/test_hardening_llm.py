"""Issue 13, item 5: `GET /api/health?deep=1` on the LLM API spent a Gemini call per request,
unauthenticated. Replayed against the LLM API served for real on the fake Gemini: a burst of deep
health requests makes one upstream call.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support import ServiceProcess, free_port, http, service_env


def test_a_burst_of_deep_health_requests_costs_one_gemini_call(fake_gemini, tmp_path):
    port = free_port()
    env = service_env(tmp_path, LLM_ENGINE="gemini", GEMINI_API_KEY="AIza-test-key-0000000000000000000000",
                      GEMINI_BASE_URL=fake_gemini.base_url, LLM_API_PORT=str(port))
    llm = ServiceProcess("services.llm_api", port, env, log=tmp_path / "llm.log").start()
    try:
        fake_gemini.reply("ok")
        with ThreadPoolExecutor(16) as pool:  # concurrent, then one after another
            answers = list(pool.map(lambda i: http("GET", llm.url("/api/health?deep=1", ("127.0.0.1", "::1")[i % 2])),
                                    range(64)))
        answers += [http("GET", llm.url("/api/health?deep=1")) for _ in range(20)]
    finally:
        llm.stop()
    assert all(status == 200 and body["status"] == "ok" for status, body in answers), answers[:3]
    assert len(fake_gemini.requests) == 1  # before the fix: 84
