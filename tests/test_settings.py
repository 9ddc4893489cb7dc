"""Settings: precedence, defaults, validation, secret handling, masking."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from raictl.errors import RaictlError
from raishared.database import mask_url
from raishared.settings import load_settings, mask_secret

KEY = "AIzaSyD-EXAMPLE-0123456789abcdefghijklm"


def test_defaults_match_design(isolated, monkeypatch):
    monkeypatch.delenv("RAICTL_HOME")
    s = load_settings(environ={})
    assert s.home == isolated / ".raictl"
    assert s.database_url == f"sqlite:///{isolated / '.raictl' / 'rai.db'}"
    assert (s.rai_api_port, s.rai_api_hosts) == (6102, ("127.0.0.1", "::1"))
    assert (s.llm_api_port, s.llm_api_hosts) == (6301, ("127.0.0.1", "::1"))
    assert s.llm_api_url == "http://127.0.0.1:6301"
    assert (s.llm_engine, s.resolved_engine) == ("auto", "mock")
    assert s.sources["rai_api_port"] == "default"


def test_precedence_toml_dotenv_environment_override(isolated):
    (isolated / "raictl.toml").write_text('[rai_api]\nport = 7001\n[llm_api]\nport = 7101\nengine = "mock"\n'
                                          'hosts = ["::1"]\n')
    (isolated / ".env").write_text("RAI_API_PORT=7002\nLLM_ENGINE=gemini\n")
    s = load_settings(environ={"LLM_ENGINE": "auto"})
    assert s.rai_api_port == 7002 and s.sources["rai_api_port"] == ".env (RAI_API_PORT)"
    assert s.llm_api_port == 7101 and s.sources["llm_api_port"].startswith("raictl.toml")
    assert s.llm_engine == "auto" and s.sources["llm_engine"] == "environment (LLM_ENGINE)"
    assert s.llm_api_url == "http://[::1]:7101"
    assert load_settings(environ={}, rai_api_port=7003).rai_api_port == 7003


def test_config_found_in_parent_and_home_beside_it(isolated, monkeypatch):
    monkeypatch.delenv("RAICTL_HOME")
    (isolated / "raictl.toml").write_text("")
    sub = isolated / "a" / "b"
    sub.mkdir(parents=True)
    s = load_settings(cwd=sub, environ={})
    assert s.config_file == isolated / "raictl.toml"
    assert s.home == isolated / ".raictl"


def test_google_api_key_is_accepted_and_gemini_key_wins(isolated):
    assert load_settings(environ={"GOOGLE_API_KEY": KEY}).resolved_engine == "gemini"
    s = load_settings(environ={"GOOGLE_API_KEY": "other-key-000000000", "GEMINI_API_KEY": KEY})
    assert s.gemini_api_key == KEY


@pytest.mark.parametrize("var,value,words", [
    ("RAI_API_PORT", "abc", "port number"),
    ("LLM_API_PORT", "70000", "port number"),
    ("LLM_ENGINE", "gpt", "one of auto, gemini, openai, mock"),
    ("RAI_API_HOSTS", "localhost", "not an IP address"),
])
def test_bad_values_are_named(isolated, var, value, words):
    with pytest.raises(RaictlError) as err:
        load_settings(environ={var: value})
    assert var in err.value.message and words in err.value.message and err.value.hint


def test_secret_key_created_once_with_mode_0600(isolated):
    s = load_settings()
    first = s.secret_key()
    path = s.home / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_settings().secret_key() == first
    assert load_settings(environ={"RAI_SECRET_KEY": "given"}).secret_key() == "given"


def test_home_is_created_0700_and_an_existing_folder_keeps_its_mode(isolated, tmp_path):
    """<home> holds secrets, the database and every log: born 0700, parents it needs too (XDG's rule)."""
    fresh = tmp_path / "new" / "home"
    load_settings(environ={"RAICTL_HOME": str(fresh)}).secret_key()
    assert [stat.S_IMODE(p.stat().st_mode) for p in (fresh.parent, fresh)] == [0o700, 0o700]
    made = tmp_path / "made-by-user"
    made.mkdir()
    made.chmod(0o750)  # the user's choice: raictl does not chmod a folder it did not create
    load_settings(environ={"RAICTL_HOME": str(made)}).secret_key()
    assert stat.S_IMODE(made.stat().st_mode) == 0o750


def test_secrets_never_shown(isolated):
    s = load_settings(environ={"GEMINI_API_KEY": KEY, "RAI_DATABASE_URL": "mysql+pymysql://u:pw@h/db"})
    assert KEY not in repr(s) and "pw@" not in repr(s)
    assert mask_secret(KEY) == f"AIza…jklm ({len(KEY)} chars)"
    assert mask_url("mysql+pymysql://u:pw@h/db") == "mysql+pymysql://u:***@h/db"
    assert s.to_env()["GEMINI_API_KEY"] == KEY


def test_a_password_in_the_query_string_is_masked_too(isolated):
    """pymysql takes `?password=` as well as `user:password@`: neither is ever shown."""
    url = "mysql+pymysql://root@127.0.0.1:1/rai?charset=utf8mb4&password=s3cretQ&PWD=x9&ssl_token=t0k"
    assert mask_url(url) == "mysql+pymysql://root@127.0.0.1:1/rai?charset=utf8mb4&password=***&PWD=***&ssl_token=***"
    assert mask_url("sqlite:////tmp/rai.db?mode=ro") == "sqlite:////tmp/rai.db?mode=ro"
    url = "mysql+pymysql://root@127.0.0.1:1/rai?charset=utf8mb4&password=s3cretQ"
    done = subprocess.run([sys.executable, "-m", "raictl", "migrate"], env={**os.environ, "RAI_DATABASE_URL": url},
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and "127.0.0.1" in done.stderr, done.stderr
    assert "s3cretQ" not in done.stderr + done.stdout and "password=***" in done.stderr


def test_services_that_is_not_a_table_is_named(isolated):
    (isolated / "raictl.toml").write_text("services = 3\n")
    with pytest.raises(RaictlError) as err:
        load_settings(environ={})
    assert "[services.NAME]" in err.value.hint and "raictl.toml" in err.value.message


def test_bad_toml_is_one_error(isolated):
    (isolated / "raictl.toml").write_text("[rai_api\nport = 1\n")
    with pytest.raises(RaictlError) as err:
        load_settings(environ={})
    assert "not valid TOML" in err.value.message


@pytest.mark.parametrize("toml,words", [
    ("database_url = 5\n", "database_url must be a string (text in quotes), got 5"),
    ("[rai_api]\nport = true\n", "rai_api.port must be an integer port number, got True"),
    ("[llm_api]\nhosts = 1\n", "llm_api.hosts must be a list of IP addresses"),
    ("[gemini]\nmodel = [\"a\"]\n", "gemini.model must be a string"),
    ("rai_api = 5\n", "`rai_api` must be a table like [rai_api], got 5"),
])
def test_a_toml_value_of_the_wrong_type_is_one_error(isolated, toml, words):
    """`database_url = 5` used to load as the text "5" (and `raictl migrate` rejected it later)."""
    (isolated / "raictl.toml").write_text(toml)
    with pytest.raises(RaictlError) as err:
        load_settings(environ={})
    assert words in err.value.message and str(isolated / "raictl.toml") in err.value.message
    assert err.value.hint.startswith("fix it in raictl.toml") or "[rai_api]" in err.value.hint


def test_a_quoted_port_in_toml_is_still_read_as_a_port(isolated):
    (isolated / "raictl.toml").write_text('[rai_api]\nport = "7001"\nhosts = "127.0.0.1,::1"\n')
    s = load_settings(environ={})
    assert (s.rai_api_port, s.rai_api_hosts) == (7001, ("127.0.0.1", "::1"))


@pytest.mark.parametrize("var", ["LLM_API_URL", "GEMINI_BASE_URL"])
@pytest.mark.parametrize("value", ["notaurl", "ftp://host/x", "http://", "http://host:abc", "127.0.0.1:6301"])
def test_a_malformed_url_is_named(isolated, var, value):
    with pytest.raises(RaictlError) as err:
        load_settings(environ={var: value})
    assert f"{var} must be an http:// or https:// URL with a host, got {value!r}" == err.value.message
    assert err.value.hint.startswith(f"e.g. {var}=http")


def test_a_remote_llm_api_url_is_kept(isolated):
    s = load_settings(environ={"LLM_API_URL": "https://llm.example.org:8443/base"})
    assert s.llm_api_url == "https://llm.example.org:8443/base" and s.sources["llm_api_url"].startswith("environment")


def test_unknown_toml_keys_get_a_suggestion():
    from raishared.settings import unknown_toml_keys

    doc = {"rai-api": {"port": 1}, "rai_api": {"prot": 1, "port": 2}, "services": {"web": {}},
           "databse_url": "x", "hosts": ["::1"], "zzz": 1, "home": "h"}
    assert unknown_toml_keys(doc) == ["rai-api (did you mean rai_api?)", "rai_api.prot (did you mean rai_api.port?)",
                                      "databse_url (did you mean database_url?)",
                                      "hosts (did you mean rai_api.hosts or llm_api.hosts?)", "zzz"]


def test_an_unparsable_dotenv_line_is_found_with_its_name_never_its_value(isolated):
    from raishared.settings import dotenv_errors

    (isolated / ".env").write_text(f'LLM_ENGINE=mock\nexport GEMINI_API_KEY="{KEY}\n')
    s = load_settings(environ={})
    assert s.llm_engine == "mock" and s.gemini_api_key is None  # python-dotenv skips the line
    assert dotenv_errors(isolated / ".env") == ((2, "GEMINI_API_KEY"),)
