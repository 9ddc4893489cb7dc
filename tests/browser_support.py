"""A real browser for the chat page's tests and bench: Debian's headless chromium driven by selenium.

Nothing is downloaded: the system `chromium` and `chromedriver` are named explicitly, so selenium's
driver manager never runs. Without them the browser tests skip, except under CI=true, where
`.ci/run` installs them and a missing browser is a failure. Chrome's performance log records every
request the page makes (`requests_made`), which is how the tests see that nothing left the origin.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from tests.fake_gemini import FakeGemini
from tests.support import ServiceProcess, free_port, service_env

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
PAGE_SECRET = "page-stack-signing-secret"  # the stack's RAI_SECRET_KEY: a test can sign an expired token


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) found on PATH, or None."""
    browser = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def require_browser() -> tuple[str, str]:
    """The browser's paths; skip (fail under CI=true) when chromium, its driver or selenium is missing."""
    paths = browser_paths()
    missing = None if paths else "Debian's chromium and chromium-driver are not installed"
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing = "selenium is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}: the browser tests must run under CI=true")
        pytest.skip(f"{missing} (browser tests skipped)")
    assert paths is not None  # else skip() or fail() raised
    return paths


def start_browser(paths: tuple[str, str], width: int = 1100, height: int = 760, log_path: str | None = None) -> WebDriver:
    """A headless chromium session with the performance log on; quit() it after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--metrics-recording-only", "--mute-audio",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=paths[1], log_output=log_path or os.devnull)
    return webdriver.Chrome(options=options, service=service)


def requests_made(driver: WebDriver) -> list[str]:
    """URLs of every request the browser sent since the last call (the performance log drains)."""
    urls = []
    for entry in driver.get_log("performance"):
        message: dict[str, Any] = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


# Chrome logs every 4xx/5xx answer to the console; the page shows those to the user on purpose.
HTTP_STATUS_LINE = "Failed to load resource: the server responded with a status of"


def console_errors(driver: WebDriver) -> list[str]:
    """The browser console's errors since the last call (script errors, CSP violations), not the
    lines chrome adds for an HTTP error status."""
    return [e["message"] for e in driver.get_log("browser")
            if e.get("level") == "SEVERE" and HTTP_STATUS_LINE not in e["message"]]


@contextmanager
def page_stack(home: Path) -> Iterator[tuple[FakeGemini, ServiceProcess]]:
    """(fake Gemini, RAI API) running for real on free ports, the LLM API between them on the gemini
    engine (the real google-genai client), the RAI API on a fresh SQLite database at head."""
    from alembic import command

    from migrations import alembic_config

    database = f"sqlite:///{home / 'rai.db'}"
    command.upgrade(alembic_config(database), "head")
    (home / "llm").mkdir()
    (home / "rai").mkdir()
    with FakeGemini() as fake:
        llm_port, rai_port = free_port(), free_port()
        llm = ServiceProcess("services.llm_api", llm_port, service_env(
            home / "llm", LLM_ENGINE="gemini", GEMINI_API_KEY="fake-key", GEMINI_BASE_URL=fake.base_url,
            LLM_API_PORT=str(llm_port), LLM_API_HOSTS="127.0.0.1"), hosts=("127.0.0.1",), log=home / "llm_api.log")
        rai = ServiceProcess("services.rai_api", rai_port, service_env(
            home / "rai", RAI_DATABASE_URL=database, RAI_API_PORT=str(rai_port), LLM_API_PORT=str(llm_port),
            LLM_API_HOSTS="127.0.0.1", RAI_SECRET_KEY=PAGE_SECRET), log=home / "rai_api.log")
        try:
            llm.start()
            yield fake, rai.start()
        finally:
            rai.stop()
            llm.stop()
