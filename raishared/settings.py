"""The one Settings object shared by raictl, the LLM API and the RAI API, and its fields table.

Precedence, lowest first: built-in defaults < raictl.toml < .env < environment < explicit overrides
(CLI flags). A `.env` value never overrides a variable that is already set in the environment.
Every resolved value remembers where it came from, so `raictl doctor` can say so.

The supervisor hands each child the settings it resolved through the environment
(`Settings.to_env()`), so the services and raictl can never disagree about a port, a database or a key.
Each setting's environment variable is named once, in FIELDS (`env_var`). This module imports only
the standard library and python-dotenv: it is on the CLI's start-up path.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from raishared.database import mask_url
from raishared.errors import HintedError
from raishared.private_files import create_private

if TYPE_CHECKING:
    import logging

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_NAME = "raictl.toml"
DOTENV_NAME = ".env"
HOME_DIRNAME = ".raictl"
SECRET_FILE = "secret_key"
DEFAULT_GEMINI_MODEL = "gemini-2.5-flash"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
ENGINES = ("auto", "gemini", "openai", "mock")
LOOPBACKS = ("127.0.0.1", "::1")


def _port(raw: Any, name: str) -> int:
    try:
        port = int(str(raw).strip())
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise HintedError(f"{name} must be a port number from 1 to 65535, got {raw!r}",
                          hint=f"fix {name} in the environment, .env or raictl.toml")
    return port


def _hosts(raw: Any, name: str) -> tuple[str, ...]:
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    hosts = tuple(str(h).strip().strip("[]") for h in items if str(h).strip())
    if not hosts:
        raise HintedError(f"{name} is empty", hint=f"set {name} to e.g. 127.0.0.1,::1")
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise HintedError(f"{name} holds {host!r}, which is not an IP address",
                              hint=f"use IP literals, e.g. {name}=127.0.0.1,::1") from None
    return hosts


def _names(raw: Any, name: str) -> tuple[str, ...]:
    """Host names or IP literals, comma-separated or a list, lower-cased (an empty value: none)."""
    import re

    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    names = tuple(str(h).strip().strip("[]").lower().rstrip(".") for h in items if str(h).strip())
    for host in names:
        if not re.fullmatch(r"[a-z0-9_.:\-]{1,253}", host):
            raise HintedError(f"{name} holds {host!r}, which is not a host name",
                              hint=f"list bare names or addresses, e.g. {name}=chat.example.org,192.0.2.7")
    return names


def _origins(raw: Any, name: str) -> tuple[str, ...]:
    """Web origins (`https://chat.example.org`, `http://127.0.0.1:5173`), lower-cased, without a path."""
    from urllib.parse import urlsplit

    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    origins = tuple(str(o).strip().lower().rstrip("/") for o in items if str(o).strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
            raise HintedError(f"{name} holds {origin!r}, which is not a web origin",
                              hint=f"an origin is scheme://host[:port], e.g. {name}=http://127.0.0.1:5173")
    return origins


def _count(raw: Any, name: str) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise HintedError(f"{name} must be a positive whole number, got {raw!r}",
                          hint=f"fix {name} in the environment, .env or raictl.toml")
    return value


def _engine(raw: Any, name: str) -> str:
    engine = str(raw).strip().lower()
    if engine not in ENGINES:
        raise HintedError(f"{name} must be one of {', '.join(ENGINES)}, got {raw!r}",
                          hint=f"set {name}=auto to use Gemini when its key is set, else an OpenAI-compatible "
                               "server when OPENAI_BASE_URL or OPENAI_API_KEY is set, else the mock")
    return engine


def _seconds(raw: Any, name: str) -> float:
    """A positive number of seconds."""
    try:
        seconds = float(str(raw).strip())
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise HintedError(f"{name} must be a number of seconds above 0, got {raw!r}",
                          hint=f"fix {name} in the environment, .env or raictl.toml (or unset it for the default)")
    return seconds


def _text(raw: Any, name: str) -> str | None:
    text = str(raw).strip()
    return text or None


def _url(raw: Any, name: str) -> str | None:
    """An http(s) URL with a host, else one clear error (a bad URL would only fail later, deep in a request)."""
    from urllib.parse import urlsplit

    text = _text(raw, name)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise HintedError(f"{name} must be an http:// or https:// URL with a host, got {text!r}",
                          hint=f"e.g. {name}=" + ("http://127.0.0.1:6301" if name == "LLM_API_URL" else "https://HOST")
                               + " (or unset it to use the default)")
    return text


@dataclass(frozen=True)
class Field:
    """One setting: its attribute name, env var(s), dotted key in raictl.toml and parser."""

    name: str
    env: tuple[str, ...]
    toml: str
    parse: Callable[[Any, str], Any]
    secret: bool = False
    # what raictl.toml must hold: "string", "port" or "count" (an integer), "number", "addresses" or "names" (a list)
    toml_type: str = "string"


FIELDS: tuple[Field, ...] = (
    Field("home", ("RAICTL_HOME",), "home", _text),
    Field("database_url", ("RAI_DATABASE_URL",), "database_url", _text, secret=True),
    Field("rai_api_port", ("RAI_API_PORT",), "rai_api.port", _port, toml_type="port"),
    Field("rai_api_hosts", ("RAI_API_HOSTS",), "rai_api.hosts", _hosts, toml_type="addresses"),
    Field("rai_api_replicas", ("RAI_API_REPLICAS",), "rai_api.replicas", _count, toml_type="count"),
    Field("llm_api_port", ("LLM_API_PORT",), "llm_api.port", _port, toml_type="port"),
    Field("llm_api_hosts", ("LLM_API_HOSTS",), "llm_api.hosts", _hosts, toml_type="addresses"),
    Field("llm_api_url", ("LLM_API_URL",), "llm_api.url", _url),
    Field("llm_engine", ("LLM_ENGINE",), "llm_api.engine", _engine),
    Field("gemini_api_key", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "gemini.api_key", _text, secret=True),
    Field("gemini_model", ("GEMINI_MODEL",), "gemini.model", _text),
    Field("gemini_base_url", ("GEMINI_BASE_URL",), "gemini.base_url", _url),
    Field("openai_base_url", ("OPENAI_BASE_URL",), "openai.base_url", _url),
    Field("openai_api_key", ("OPENAI_API_KEY",), "openai.api_key", _text, secret=True),
    Field("openai_model", ("OPENAI_MODEL",), "openai.model", _text),
    Field("secret_key", ("RAI_SECRET_KEY",), "rai_api.secret_key", _text, secret=True),
    Field("system_prompt", ("RAI_SYSTEM_PROMPT",), "rai_api.system_prompt", _text),
    Field("allowed_hosts", ("RAICTL_ALLOWED_HOSTS",), "http.allowed_hosts", _names, toml_type="names"),
    Field("allowed_origins", ("RAICTL_ALLOWED_ORIGINS",), "http.allowed_origins", _origins, toml_type="names"),
    Field("max_connections", ("RAICTL_MAX_CONNECTIONS",), "http.max_connections", _count, toml_type="count"),
    Field("idle_timeout_s", ("RAICTL_IDLE_TIMEOUT_S",), "http.idle_timeout_s", _count, toml_type="count"),
    Field("llm_timeout_s", ("LLM_TIMEOUT_S",), "llm_api.timeout_s", _seconds, toml_type="number"),
    Field("rai_api_max_waiting", ("RAI_API_MAX_WAITING",), "rai_api.max_waiting", _count, toml_type="count"),
    Field("llm_api_max_waiting", ("LLM_API_MAX_WAITING",), "llm_api.max_waiting", _count, toml_type="count"),
)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}
# The keys raictl.toml may hold: top-level settings, the tables of the built-ins and their keys, and
# `services` (whose [services.NAME] tables the supervisor's spec checks key by key).
TOML_TABLES: dict[str, tuple[str, ...]] = {}
for _f in FIELDS:
    if "." in _f.toml:
        _table, _key = _f.toml.split(".", 1)
        TOML_TABLES[_table] = (*TOML_TABLES.get(_table, ()), _key)
TOML_TOP = tuple(f.toml for f in FIELDS if "." not in f.toml) + ("services",)
# Keys of [llm_api] / [rai_api] (and of [services.NAME]) that only the supervisor reads and checks
# (raictl.supervisor.spec): how often, how patiently and how many times a running service is probed.
LIVENESS_KEYS = ("liveness_interval", "liveness_timeout", "liveness_failures")
for _table in ("llm_api", "rai_api"):
    TOML_TABLES[_table] = (*TOML_TABLES.get(_table, ()), *LIVENESS_KEYS)

DEFAULTS: dict[str, Any] = {
    "rai_api_port": 6102,
    "rai_api_hosts": LOOPBACKS,
    "rai_api_replicas": 1,
    "llm_api_port": 6301,
    "llm_api_hosts": LOOPBACKS,
    "llm_engine": "auto",
    "gemini_model": DEFAULT_GEMINI_MODEL,
    "allowed_hosts": (),
    "allowed_origins": (),
    "max_connections": 1000,
    "idle_timeout_s": 30,
    "openai_model": DEFAULT_OPENAI_MODEL,
    # How long the LLM may take to begin a reply, and between two pieces of one (see services/waiting.py
    # and DESIGN.md for the two limits): bench/bench_slow_llm.py measured the memory a waiting chat costs.
    "llm_timeout_s": 60.0,
    "rai_api_max_waiting": 256,
    "llm_api_max_waiting": 256,
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings. `sources[name]` says where each value came from."""

    home: Path
    database_url: str
    rai_api_port: int
    rai_api_hosts: tuple[str, ...]
    llm_api_port: int
    llm_api_hosts: tuple[str, ...]
    llm_api_url: str
    llm_engine: str
    gemini_api_key: str | None
    gemini_model: str
    gemini_base_url: str | None
    openai_base_url: str | None
    openai_api_key: str | None
    openai_model: str
    rai_api_replicas: int = 1  # RAI API processes on consecutive ports (raictl.supervisor.spec.replicas)
    system_prompt: str | None = None  # a new chat session's system prompt when it is given none
    allowed_hosts: tuple[str, ...] = ()  # served besides the loopbacks and the listen addresses
    allowed_origins: tuple[str, ...] = ()  # may send state-changing requests besides the API's own origin
    max_connections: int = 1000  # open connections per service (waitress' connection_limit)
    idle_timeout_s: int = 30  # a connection silent this long is closed (waitress' channel_timeout)
    llm_timeout_s: float = 60.0
    rai_api_max_waiting: int = 256
    llm_api_max_waiting: int = 256
    secret_key_value: str | None = field(repr=False, default=None)
    config_file: Path | None = None
    env_file: Path | None = None
    services: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    liveness: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # [llm_api]/[rai_api] LIVENESS_KEYS
    cwd: Path | None = None  # the folder these settings were resolved for (a .env there may not be the one read)

    def __repr__(self) -> str:  # never leak a secret through a repr in a log or traceback
        shown = {f.name: self.display(f.name) for f in FIELDS if f.name != "secret_key"}
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @property
    def resolved_engine(self) -> str:
        """The engine `auto` stands for: gemini when its key is set, else openai when an OpenAI base URL or
        key is set, else mock."""
        if self.llm_engine != "auto":
            return self.llm_engine
        if self.gemini_api_key:
            return "gemini"
        return "openai" if self.openai_base_url or self.openai_api_key else "mock"

    @property
    def rai_api_url(self) -> str:
        return base_url(self.rai_api_hosts[0], self.rai_api_port)

    @property
    def base_dir(self) -> Path:
        """raictl.toml's folder, else the current directory: where `.env` is read, where the services
        run, and what a relative `cwd` in `[services.NAME]` is relative to."""
        return self.config_file.parent if self.config_file else Path.cwd()

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    def secret_key(self) -> str:
        """The token signing secret: RAI_SECRET_KEY, else generated once into <home>/secret_key (0600)."""
        if self.secret_key_value:
            return self.secret_key_value
        return read_or_create_secret(self.home / SECRET_FILE)

    def display(self, name: str) -> str:
        """A value as it may be shown to a person: secrets masked, tuples joined."""
        value = getattr(self, name)
        if name == "database_url":
            return mask_url(value)
        if FIELDS_BY_NAME[name].secret:
            return mask_secret(value)
        if isinstance(value, tuple):
            return ",".join(value)
        return "" if value is None else str(value)

    def to_env(self) -> dict[str, str]:
        """The environment a child needs to resolve exactly these settings: each set value under its
        field's first variable name (FIELDS), tuples joined by commas."""
        env = {}
        for f in FIELDS:
            value = self.secret_key_value if f.name == "secret_key" else getattr(self, f.name)
            if value not in (None, "", ()):
                env[f.env[0]] = ",".join(value) if isinstance(value, tuple) else str(value)
        return env


def env_var(name: str) -> str:
    """The environment variable of the setting `name`: `llm_api_port` -> `LLM_API_PORT`."""
    return FIELDS_BY_NAME[name].env[0]


def host_port(host: str, port: int) -> str:
    """HOST:PORT with an IPv6 literal bracketed: `127.0.0.1:6102`, `[::1]:6102`."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect_host(host: str) -> str:
    """The address a client connects to for a listening `host`: a wildcard becomes the matching loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def base_url(host: str, port: int) -> str:
    """http://HOST:PORT with an IPv6 literal bracketed; a wildcard becomes the matching loopback."""
    return "http://" + host_port(connect_host(host), port)



def mask_secret(value: str | None) -> str:
    """`AIza…f3x9 (39 chars)`: enough to recognise a key, never enough to use it."""
    if not value:
        return "(not set)"
    if len(value) < 12:
        return f"*** ({len(value)} chars)"
    return f"{value[:4]}…{value[-4:]} ({len(value)} chars)"



def read_or_create_secret(path: Path) -> str:
    """Read the secret at `path`, or create it atomically with mode 0600 (first writer wins)."""
    secret = secrets.token_urlsafe(48)
    if create_private(path, secret + "\n"):
        return secret
    secret = path.read_text().strip()
    if not secret:
        raise HintedError(f"the secret file {path} is empty",
                          hint="delete it to have a new one generated (existing tokens become invalid)")
    return secret


def find_config(start: Path) -> Path | None:
    """The nearest raictl.toml in `start` or one of its parents."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise HintedError(f"{path} is not valid TOML: {exc}", hint="fix the file or remove it") from None


def _toml_get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


_TOML_TYPES = {"string": "a string (text in quotes)", "port": "an integer port number",
               "count": "a positive integer", "number": "a number", "names": "a list of strings, e.g. [\"chat.example.org\"]",
               "addresses": "a list of IP addresses, e.g. [\"127.0.0.1\", \"::1\"]"}


def _toml_type_ok(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if kind in ("port", "count"):
        return isinstance(value, (int, str))  # a quoted number is read as one; _port names a bad one
    if kind == "number":
        return isinstance(value, (int, float, str))
    if kind in ("addresses", "names"):
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(h, str) for h in value))
    return isinstance(value, str)


def _check_toml_types(doc: Mapping[str, Any], config: Path) -> None:
    """One clear error for a value of the wrong type (`database_url = 5`, `[rai_api]` written as a key)."""
    for table in TOML_TABLES:
        if table in doc and not isinstance(doc[table], Mapping):
            raise HintedError(f"{config}: `{table}` must be a table like [{table}], got {doc[table]!r}",
                              hint=f"write its keys under a [{table}] line")
    for f in FIELDS:
        value = _toml_get(doc, f.toml)
        if value is not None and not _toml_type_ok(f.toml_type, value):
            key = f.toml.rsplit(".", 1)[-1]
            example = {"port": f"{key} = 6102", "addresses": f'{key} = ["127.0.0.1", "::1"]'}.get(
                f.toml_type, f'{key} = "..."')
            raise HintedError(f"{config}: {f.toml} must be {_TOML_TYPES[f.toml_type]}, got {value!r}",
                              hint=f"fix it in raictl.toml, e.g. {example}")


def unknown_toml_keys(doc: Mapping[str, Any]) -> list[str]:
    """Keys of raictl.toml that raictl does not read (typos are silently ignored otherwise), each with
    `(did you mean ...?)` when a known name is close: `rai-api (did you mean rai_api?)`."""
    import difflib  # doctor's alone: not on every command's start-up

    found = []
    for key, value in doc.items():
        if key in TOML_TOP:
            continue
        if key in TOML_TABLES:
            if isinstance(value, Mapping):
                for sub in value:
                    if sub not in TOML_TABLES[key]:
                        close = difflib.get_close_matches(sub, TOML_TABLES[key], n=1)
                        found.append(f"{key}.{sub}" + (f" (did you mean {key}.{close[0]}?)" if close else ""))
            continue
        close = difflib.get_close_matches(key, [*TOML_TOP, *TOML_TABLES], n=1)
        if not close:  # a table's key written at the top level: `port = 7001` before any [table]
            close = [f.toml for f in FIELDS if f.toml.endswith("." + key)][:2]
        found.append(f"{key} (did you mean {' or '.join(close)}?)" if close else key)
    return found


def _not_a_parse_warning(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("python-dotenv could not parse")


def _capture_dotenv_warnings() -> None:
    """python-dotenv logs an unparsable line with no file name, once per read (so twice in a doctor run):
    raictl reports it instead, with the file and the line (`dotenv_errors`, doctor's config.env_file)."""
    import logging

    logger = logging.getLogger("dotenv.main")
    if _not_a_parse_warning not in logger.filters:
        logger.addFilter(_not_a_parse_warning)


def dotenv_errors(path: Path) -> tuple[tuple[int, str | None], ...]:
    """(line, the name it seems to set) of each statement of the .env at `path` python-dotenv cannot parse
    (it skips them: an unterminated quote silently drops the key). Never the value: it may be a secret."""
    import re

    from dotenv.parser import parse_stream

    try:
        with path.open(encoding="utf-8") as stream:
            bad = [b.original for b in parse_stream(stream) if b.error]
    except (OSError, UnicodeDecodeError):
        return ()
    name = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=")
    return tuple((o.line, m.group(1) if (m := name.match(o.string)) else None) for o in bad)


def read_dotenv(path: Path) -> dict[str, str]:
    """The values of a .env file as python-dotenv reads them (unparsable lines skipped: see dotenv_errors)."""
    from dotenv import dotenv_values

    _capture_dotenv_warnings()
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _raw_layers(config: Path | None, env_file: Path | None,
                environ: Mapping[str, str], overrides: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """Walk the layers lowest first; return (raw values, their sources, the toml document)."""
    doc = read_toml(config) if config else {}
    if config:
        _check_toml_types(doc, config)
    dotenv = read_dotenv(env_file) if env_file else {}
    raw: dict[str, Any] = dict(DEFAULTS)
    sources = {name: "default" for name in DEFAULTS}
    for f in FIELDS:
        value = _toml_get(doc, f.toml)
        if value is not None:
            raw[f.name], sources[f.name] = value, f"{CONFIG_NAME} ({f.toml})"
        for var in reversed(f.env):  # the first name listed wins within a layer
            if dotenv.get(var, "").strip():
                raw[f.name], sources[f.name] = dotenv[var], f".env ({var})"
        for var in reversed(f.env):
            if environ.get(var, "").strip():
                raw[f.name], sources[f.name] = environ[var], f"environment ({var})"
        if overrides.get(f.name) is not None:
            raw[f.name], sources[f.name] = overrides[f.name], "command line"
    return raw, sources, doc


def _place_home(value: str | None, live: bool, cwd: Path, base: Path) -> Path:
    """<home> from its setting: relative to the cwd when given live (environment, command line), else to
    raictl.toml's folder (`base`); the default `.raictl` beside raictl.toml, or in the cwd."""
    home = Path(value or HOME_DIRNAME)
    return home if home.is_absolute() else ((cwd if live else base) / home).resolve()


def lenient_home(cwd: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where <home> is when the settings as a whole do not load (`raictl down` must still find what to
    stop), with the same precedence read leniently: RAICTL_HOME from the environment, else from .env,
    else `home` of raictl.toml if that file still parses, else the default."""
    cwd = Path(cwd or os.getcwd()).resolve()
    environ = os.environ if environ is None else environ
    config = find_config(cwd)
    base = config.parent if config else cwd
    value = environ.get("RAICTL_HOME", "").strip()
    if value:
        return _place_home(value, True, cwd, base)
    try:
        value = read_dotenv(base / DOTENV_NAME).get("RAICTL_HOME", "").strip() if (base / DOTENV_NAME).is_file() else ""
    except (OSError, UnicodeDecodeError):  # an unreadable .env: the next layer decides
        value = ""
    if not value and config:
        try:
            found = read_toml(config).get("home")
        except (HintedError, OSError):  # the broken file itself: its folder still implies a home
            found = None
        value = found.strip() if isinstance(found, str) else ""
    return _place_home(value or None, False, cwd, base)


def load_settings(cwd: Path | str | None = None, environ: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Resolve the settings for a process running in `cwd` (default: the current directory)."""
    cwd = Path(cwd or os.getcwd()).resolve()
    environ = os.environ if environ is None else environ
    config = find_config(cwd)
    base = config.parent if config else cwd
    env_file = base / DOTENV_NAME if (base / DOTENV_NAME).is_file() else None
    raw, sources, doc = _raw_layers(config, env_file, environ, overrides)
    values: dict[str, Any] = {f.name: f.parse(raw[f.name], f.env[0]) if raw.get(f.name) is not None else None
                              for f in FIELDS}
    sources.setdefault("home", "default")
    home = _place_home(values["home"], sources["home"].startswith(("environment", "command line")), cwd, base)
    if not values["database_url"]:
        values["database_url"], sources["database_url"] = f"sqlite:///{home / 'rai.db'}", "default"
    if not values["llm_api_url"]:
        values["llm_api_url"] = base_url(values["llm_api_hosts"][0], values["llm_api_port"])
        sources["llm_api_url"] = "derived from LLM_API_HOSTS and LLM_API_PORT"
    secret = values.pop("secret_key")
    values["home"] = home
    services = doc.get("services", {})
    if not isinstance(services, Mapping):
        raise HintedError(f"{config}: `services` must be tables like [services.web], got {services!r}",
                          hint="declare each extra service as a [services.NAME] table")
    return Settings(**values, secret_key_value=secret, config_file=config, env_file=env_file,
                    services=services, sources=sources, cwd=cwd,
                    liveness={t: {k: v for k, v in doc[t].items() if k in LIVENESS_KEYS}
                              for t in ("llm_api", "rai_api") if isinstance(doc.get(t), Mapping)})
