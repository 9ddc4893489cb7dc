"""doctor's llm.openai against the fake OpenAI-compatible server: answers, model listed, key, the ::1 trap."""

from __future__ import annotations

import pytest

from tests.doctor_support import doctor, show
from tests.fake_openai import DEFAULT_REPLY, FakeOpenAI
from tests.support import ServiceProcess, free_port, http, service_env

KEY = "sk-DOCTOR-0123456789abcdefghijklm"


def check(**environ):
    return doctor(None, "llm.openai", environ=environ)["llm.openai"]


def test_a_healthy_server_lists_the_model_and_accepts_the_key(fake_openai):
    fake_openai.require_key(KEY)
    result = check(OPENAI_BASE_URL=fake_openai.base_url, OPENAI_API_KEY=KEY, OPENAI_MODEL="llama3.2")
    assert result.status == "ok", result
    assert result.summary == (f"{fake_openai.base_url} answers and lists llama3.2; "
                              f"key sk-D…jklm ({len(KEY)} chars) accepted")
    assert [r.path for r in fake_openai.requests] == ["/v1/models"]


def test_ollama_s_latest_tag_counts_as_the_model(fake_openai):
    fake_openai.models = ["qwen3:latest"]
    result = check(OPENAI_BASE_URL=fake_openai.base_url, OPENAI_MODEL="qwen3")
    assert result.status == "ok" and result.summary.endswith("no key set (a local server needs none)"), result


def test_a_model_the_server_does_not_list_is_named_with_what_it_lists(fake_openai):
    fake_openai.models = ["llama3.2:latest", "qwen3:latest"]
    result = check(OPENAI_BASE_URL=fake_openai.base_url, OPENAI_MODEL="mistral")
    assert result.status == "fail"
    assert result.summary == (f"{fake_openai.base_url} answers but does not list the model 'mistral' "
                              "(it lists llama3.2:latest, qwen3:latest)")
    assert result.hint == "set OPENAI_MODEL to one it lists, or fetch it (Ollama: `ollama pull mistral`)"


def test_a_rejected_key(fake_openai):
    fake_openai.require_key("sk-the-right-one-0123456789")
    result = check(OPENAI_BASE_URL=fake_openai.base_url, OPENAI_API_KEY=KEY)
    assert result.status == "fail" and "rejected the API key (HTTP 401)" in result.summary, result
    assert "OPENAI_API_KEY" in result.hint and KEY not in result.summary + result.hint


def test_nothing_listening():
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = check(OPENAI_BASE_URL=url)
    assert result.status == "fail" and result.summary.startswith(f"cannot reach the OpenAI-compatible server at {url}")
    assert "ollama serve" in result.hint


def test_a_base_url_without_v1(fake_openai):
    result = check(OPENAI_BASE_URL=fake_openai.base_url.removesuffix("/v1"))
    assert result.status == "fail" and "HTTP 404" in result.summary, result
    assert result.hint.startswith("check OPENAI_BASE_URL: it usually ends in /v1")


def test_the_ipv6_loopback_of_a_server_bound_to_127_0_0_1_only(fake_openai):
    """OPENAI_BASE_URL=http://[::1]:PORT/v1 while the server (like Ollama by default) listens on 127.0.0.1 only."""
    port = fake_openai.port
    result = check(OPENAI_BASE_URL=f"http://[::1]:{port}/v1")
    assert result.status == "fail", result
    assert result.summary.startswith(f"[::1]:{port} refuses (Connection refused): the server listens on 127.0.0.1 "
                                     "only (Ollama binds 127.0.0.1 by default; the log's ECONNREFUSED ::1); "
                                     "cannot reach"), result
    assert result.hint == f"set OPENAI_BASE_URL=http://127.0.0.1:{port}/v1, or have the server listen on ::1 too"


@pytest.mark.parametrize("hosts", ["::1 localhost\n127.0.0.1 localhost\n", "127.0.0.1 localhost\n::1 localhost\n"])
def test_localhost_resolving_to_the_ipv6_loopback_first(fake_openai, tmp_path, monkeypatch, hosts):
    """The trap as a machine whose /etc/hosts maps localhost to ::1 sees it (glibc tries ::1 first either way):
    the hosts file is a real one given by RAICTL_HOSTS_FILE; the sockets are real."""
    (tmp_path / "hosts").write_text(hosts)
    monkeypatch.setenv("RAICTL_HOSTS_FILE", str(tmp_path / "hosts"))
    port = fake_openai.port
    result = check(OPENAI_BASE_URL=f"http://localhost:{port}/v1")
    assert result.status == "warn", result
    assert result.summary.startswith(f"localhost resolves to ::1 first, and [::1]:{port} refuses"), result
    assert result.summary.endswith("raictl's client falls back to the next address, other clients may not")
    assert result.hint == f"set OPENAI_BASE_URL=http://127.0.0.1:{port}/v1, or have the server listen on ::1 too"


def test_no_trap_is_claimed_when_the_first_address_accepts(tmp_path, monkeypatch):
    (tmp_path / "hosts").write_text("::1 localhost\n127.0.0.1 localhost\n")
    monkeypatch.setenv("RAICTL_HOSTS_FILE", str(tmp_path / "hosts"))
    with FakeOpenAI(host="::1") as fake:
        result = check(OPENAI_BASE_URL=f"http://localhost:{fake.port}/v1")
    # the SDK resolves with the system resolver (which may say 127.0.0.1, where nothing listens): no trap claimed
    assert "refuses" not in result.summary, result


@pytest.mark.parametrize("environ,words", [({}, "the engine is mock"),
                                           ({"GEMINI_API_KEY": "AIza-0123456789abcdef"}, "the engine is gemini")])
def test_skipped_when_another_engine_serves(environ, words):
    result = check(**environ)
    assert result.status == "skip" and result.summary.startswith(words), result


def test_openai_asked_for_with_nothing_to_reach():
    result = check(LLM_ENGINE="openai")
    assert result.status == "fail" and "OPENAI_BASE_URL" in result.summary and "11434" in result.hint, show({0: result})


# --- llm.engine with the real LLM API serving the openai engine (the SDK in a real child process) ---------

def test_llm_engine_names_the_server_the_running_llm_api_uses(fake_openai, tmp_path):
    port = free_port()
    env = service_env(tmp_path / "llm", LLM_API_PORT=port, OPENAI_BASE_URL=fake_openai.base_url,
                      OPENAI_MODEL="llama3.2")
    (tmp_path / "llm").mkdir()
    llm = ServiceProcess("services.llm_api", port, env, log=tmp_path / "llm" / "llm_api.log").start()
    try:
        status, body = http("POST", llm.url("/api/generate"), {"messages": [{"role": "user", "content": "hi"}]})
        served = doctor(None, "llm.engine", llm_api_port=port, rai_api_port=free_port(),
                        environ={"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_MODEL": "llama3.2"})
    finally:
        llm.stop()
    assert (status, body["engine"], body["model"], body["text"]) == (200, "openai", "llama3.2", DEFAULT_REPLY)
    result = served["llm.engine"]
    assert result.status == "ok" and result.summary == f"openai, model llama3.2, server {fake_openai.base_url}", result


def test_llm_engine_fails_when_the_running_mock_never_got_the_server(tmp_path):
    """Log step 21 with a local model server: OPENAI_BASE_URL set after the LLM API started on the mock."""
    (tmp_path / "llm").mkdir()
    port = free_port()
    env = service_env(tmp_path / "llm", LLM_API_PORT=port)
    llm = ServiceProcess("services.llm_api", port, env, log=tmp_path / "llm" / "llm_api.log").start()
    try:
        result = doctor(None, "llm.engine", llm_api_port=port, rai_api_port=free_port(),
                        environ={"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"})["llm.engine"]
    finally:
        llm.stop()
    assert result.status == "fail", result
    assert result.summary.endswith("but raictl's settings choose openai (server http://127.0.0.1:11434/v1): "
                                   "it was started without it")
    assert "raictl restart llm_api" in result.hint
