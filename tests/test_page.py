"""The chat page at GET / of the RAI API, in a real browser (headless chromium driven by selenium).

One stack for the module: the fake Gemini -> the LLM API (gemini engine, the real google-genai
client) -> the RAI API on SQLite; one browser session reused by every test. The page is opened
through http://localhost:PORT/, http://127.0.0.1:PORT/ and http://[::1]:PORT/ (the troubleshooting
log's frontend died on `ECONNREFUSED ::1:6102`). After every test, the browser's own log of the
requests it sent shows that none left the page's origin. A failing test leaves `failure.png`
(and the page's HTML) in its temp folder.

RAI_PAGE_SCREENSHOT=docs/chat-page.png writes the README's screenshot from the localhost run.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser_support import (PAGE_SECRET, console_errors, page_stack, require_browser, requests_made,
                                   start_browser)
from tests.support import ServiceProcess, free_port, http, mock_llm_api, service_env, wait_until

REPO = Path(__file__).resolve().parent.parent
if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

STATIC = REPO / "services" / "rai_api" / "static"
HOSTS = ("localhost", "127.0.0.1", "[::1]")
PASSWORD = "correct horse"
REPLY = ("Here is **what I found**:\n\n- `raictl up` starts both services\n- the page is at "
         "http://localhost:6102/\n\n```\nraictl doctor\n```")
XSS = ('<img src=x onerror="window.__xss=1"> [click](javascript:window.__xss=2) '
       '<script>window.__xss=3</script> <svg onload="window.__xss=4"></svg> '
       '[data](data:text/html,<script>alert(1)</script>) <a href="javascript:window.__xss=5">a</a>')


# ---- the stack and the browser ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(fake Gemini, RAI API) running for real; the LLM API between them uses the gemini engine."""
    with page_stack(tmp_path_factory.mktemp("page-stack")) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    paths = require_browser()
    log = tmp_path_factory.mktemp("browser") / "chromedriver.log"
    driver = start_browser(paths, log_path=str(log))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser, served, request, tmp_path):
    """The browser with its logs drained and the fake Gemini reset; a screenshot if the test fails."""
    served[0].reset()
    requests_made(browser)
    console_errors(browser)
    yield browser
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        browser.save_screenshot(str(tmp_path / "failure.png"))
        (tmp_path / "failure.html").write_text(browser.page_source)


def origin_of(rai: ServiceProcess, host: str) -> str:
    return f"http://{host}:{rai.port}"


def open_page(driver: WebDriver, origin: str) -> None:
    """The page, freshly loaded and logged out (sessionStorage is per origin and per tab)."""
    driver.get(origin + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(origin + "/")
    wait_for(driver, "!document.getElementById('auth-view').hidden", "the login form")


def wait_for(driver: WebDriver, condition: str, what: str, timeout: float = 15.0) -> Any:
    return wait_until(lambda: driver.execute_script(f"return {condition}"), timeout, what=what)


def js_text(driver: WebDriver, selector: str) -> str:
    return driver.execute_script("const n = document.querySelector(arguments[0]); return n ? n.innerText : ''",
                                 selector)


def assert_same_origin(driver: WebDriver, origin: str) -> None:
    sent = requests_made(driver)
    assert sent, "the browser's performance log recorded no request at all"
    assert [u for u in sent if not u.startswith(origin + "/")] == [], f"requests left {origin}: {sent}"
    assert console_errors(driver) == []  # a CSP violation or a script error would be here


def sign_up(driver: WebDriver, username: str) -> None:
    driver.find_element("id", "username").send_keys(username)
    driver.find_element("id", "password").send_keys(PASSWORD)
    driver.find_element("id", "register").click()
    wait_for(driver, "!document.getElementById('chat-view').hidden", "the chat view after registering")


def last_reply_done(driver: WebDriver) -> None:
    wait_for(driver, "(() => { const m = [...document.querySelectorAll('.msg.assistant')].pop();"
                     " return m && m.dataset.state !== 'waiting' && m.dataset.state !== 'streaming'"
                     " ? m.dataset.state : null })()", "the reply to finish")


# Every change of the last reply's text while it streams, recorded in the page before Enter.
RECORD_UPDATES = """
window.__updates = [];
const box = document.getElementById('messages');
new MutationObserver(() => {
  const m = [...box.querySelectorAll('.msg.assistant')].pop();
  if (!m) return;
  const text = m.querySelector('.body').innerText;
  const last = window.__updates[window.__updates.length - 1];
  if (!last || last[1] !== text || last[0] !== m.dataset.state) window.__updates.push([m.dataset.state, text]);
}).observe(box, {subtree: true, childList: true, characterData: true, attributes: true});
"""


def chat(driver: WebDriver, text: str) -> None:
    """Type `text` as a user does (Shift+Enter between its lines), press Enter, wait for the reply."""
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element("id", "message")
    box.send_keys((Keys.SHIFT + Keys.ENTER + Keys.NULL).join(text.split("\n")))
    assert box.get_attribute("value") == text  # Shift+Enter added the lines, sent nothing
    box.send_keys(Keys.ENTER)
    last_reply_done(driver)


# ---- the tests ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", HOSTS)
def test_register_chat_reload_and_delete_through_each_loopback_name(page, served, host):
    fake, rai = served
    origin = origin_of(rai, host)
    open_page(page, origin)
    sign_up(page, f"u{uuid.uuid4().hex[:10]}")
    fake.reply(REPLY, chunks=4, delay=0.1)  # four pieces, 0.1 s apart, over SSE end to end
    page.execute_script(RECORD_UPDATES)
    chat(page, "Where is the chat page?\nAnd how do I start it?")

    reply = page.find_element("css selector", ".msg.assistant")
    assert reply.get_attribute("data-state") == "done"
    assert reply.find_element("css selector", "strong").text == "what I found"
    assert [li.text for li in reply.find_elements("css selector", "li")][0] == "raictl up starts both services"
    assert reply.find_element("css selector", "a").get_attribute("href") == "http://localhost:6102/"
    assert "raictl doctor" in reply.find_element("css selector", "pre").text
    assert page.find_element("css selector", ".msg.user").text == "Where is the chat page?\nAnd how do I start it?"
    assert "engine: gemini" in reply.text  # from the stream's `done` event
    updates = page.execute_script("return window.__updates")
    assert len({text for state, text in updates if state == "streaming" and text}) >= 2, \
        f"the reply did not stream: updates seen {updates}"
    if host == "localhost" and os.environ.get("RAI_PAGE_SCREENSHOT"):
        size = page.get_window_size()
        page.set_window_size(900, 720)
        page.save_screenshot(str(REPO / os.environ["RAI_PAGE_SCREENSHOT"]))  # relative to the checkout
        page.set_window_size(size["width"], size["height"])

    page.refresh()  # the token survives a reload (sessionStorage); the chat is listed by its first message
    title = wait_for(page, "document.querySelector('#session-list .session-title')?.innerText", "the chat's title")
    assert title.startswith("Where is the chat page?")
    page.find_element("css selector", "#session-list .session-title").click()
    wait_for(page, "document.querySelectorAll('#messages .msg').length === 2", "the chat's two messages")
    assert "what I found" in js_text(page, ".msg.assistant")

    page.find_element("css selector", "#session-list .delete").click()
    page.switch_to.alert.accept()
    wait_for(page, "document.querySelectorAll('#session-list li').length === 0 && !document.getElementById('no-sessions').hidden",
             "the chat to be gone from the list")
    assert page.find_elements("css selector", "#messages .msg") == []
    assert_same_origin(page, origin)


def test_a_new_chat_takes_a_system_prompt_kept_for_every_turn(page, served):
    """Issue 16: the page sets a new chat's system prompt; the RAI API keeps it and sends it on each turn."""
    fake, rai = served
    open_page(page, origin_of(rai, "127.0.0.1"))
    sign_up(page, f"u{uuid.uuid4().hex[:10]}")
    assert page.find_element("id", "system-box").is_displayed()
    page.find_element("css selector", "#system-box summary").click()
    page.find_element("id", "system").send_keys("Answer like a ship's captain.")
    fake.reply("Aye.", chunks=2, delay=0.05)
    chat(page, "hello")
    assert not page.find_element("id", "system-box").is_displayed()  # the chat has its prompt now
    fake.reply("Aye again.", chunks=2, delay=0.05)
    chat(page, "and again")
    bodies = [json.dumps(r.body) for r in fake.wait_for_requests(2)]
    assert all("Answer like a ship's captain." in body for body in bodies), bodies
    page.find_element("id", "new-chat").click()  # a new chat starts without the last one's prompt
    assert page.find_element("id", "system-box").is_displayed()
    assert page.find_element("id", "system").get_attribute("value") == ""


def test_hostile_replies_and_messages_run_nothing(page, served):
    fake, rai = served
    origin = origin_of(rai, "localhost")
    open_page(page, origin)
    sign_up(page, f"x{uuid.uuid4().hex[:10]}")
    fake.reply(XSS)
    chat(page, XSS)
    page.refresh()  # the stored messages, read back from the database, are untrusted too
    wait_for(page, "document.querySelector('#session-list .session-title')", "the chat in the list")
    page.find_element("css selector", "#session-list .session-title").click()
    wait_for(page, "document.querySelectorAll('#messages .msg').length === 2", "the stored messages")

    found = page.execute_script("""
        const box = document.getElementById('messages');
        const attrs = [...box.querySelectorAll('*')].flatMap(n => [...n.attributes].map(a => a.name));
        return {xss: window.__xss === undefined ? null : window.__xss,
                tags: [...box.querySelectorAll('img, script, svg, iframe, object, embed')].map(n => n.tagName),
                handlers: attrs.filter(a => a.startsWith('on')),
                hrefs: [...box.querySelectorAll('a')].map(a => a.getAttribute('href')),
                text: box.innerText};""")
    assert found["xss"] is None and found["tags"] == [] and found["handlers"] == []
    assert found["hrefs"] == []  # javascript: and data: links are shown as text, not made links
    assert found["text"].count('<img src=x onerror="window.__xss=1">') == 2
    assert "[click](javascript:window.__xss=2)" in found["text"]
    assert not any(u.endswith("/x") for u in requests_made(page)), "the <img src=x> was fetched"
    assert console_errors(page) == []


def test_markdown_renderer_makes_no_script_handler_or_javascript_url(page, served):
    """The renderer alone, on the worst inputs: it only ever creates a fixed set of harmless elements."""
    fake, rai = served
    page.get(origin_of(rai, "127.0.0.1") + "/")
    cases = ["[a](javascript:alert(1))", "[a](JaVaScRiPt:alert(1))", "[a](java&#115;cript:x)",
             "[a](vbscript:x)", "[a](data:text/html;base64,PHNjcmlwdD4=)", "<b onclick=x>b</b>",
             "**<script>x</script>**", "`<img src=x onerror=y>`", "# <h1>t</h1>", "- [x](javascript:y)",
             "```\n</code><script>x</script>\n```", "[ok](https://example.org/a?b=<c>)", "*[i](http://e.org)*"]
    rendered = page.execute_script("""
        return arguments[0].map(t => {
          const box = document.createElement('div');
          box.append(window.RaiMarkdown.render(t));
          return {tags: [...box.querySelectorAll('*')].map(n => n.tagName.toLowerCase()),
                  attrs: [...box.querySelectorAll('*')].flatMap(n => [...n.attributes].map(a => a.name + '=' + a.value)),
                  text: box.textContent};
        });""", cases)
    allowed = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "a", "h3", "h4", "h5", "h6"}
    for case, out in zip(cases, rendered):
        assert set(out["tags"]) <= allowed, (case, out)
        hrefs = [a for a in out["attrs"] if a.startswith("href=")]
        assert all(h.startswith(("href=http://", "href=https://")) for h in hrefs), (case, out)
        assert {a.split("=")[0] for a in out["attrs"]} <= {"href", "rel", "target"}, (case, out)
    assert rendered[0]["text"] == cases[0] and rendered[0]["tags"] == ["p"]
    assert rendered[5]["text"] == "<b onclick=x>b</b>"
    assert rendered[11]["attrs"][0] == "href=https://example.org/a?b=%3Cc%3E"
    assert rendered[12]["tags"] == ["p", "em", "a"]


def test_llm_down_is_said_in_words_and_the_message_kept(page, served):
    fake, rai = served
    origin = origin_of(rai, "[::1]")
    open_page(page, origin)
    sign_up(page, f"d{uuid.uuid4().hex[:10]}")
    fake.fail(503, "the model is overloaded")
    chat(page, "are you there?")
    error = page.find_element("css selector", ".msg.assistant .note.error").text
    assert error.startswith("The language model is unavailable: the LLM API at http://127.0.0.1:")
    assert "the model is overloaded" in error
    assert page.find_element("id", "message").get_attribute("value") == "are you there?"  # to send again
    assert page.find_element("css selector", ".msg.assistant").get_attribute("data-state") == "error"

    page.find_element("id", "message").clear()
    fake.reply("The first half arrives, then", chunks=2, delay=0.05, fail_after=1, status=503)
    chat(page, "and now?")  # the LLM fails mid-reply: what came stays, the reason follows it
    reply = page.find_elements("css selector", ".msg.assistant")[-1]
    assert reply.get_attribute("data-state") == "error"
    assert reply.find_element("css selector", ".body").text == "The first half"  # the first of two pieces
    assert reply.find_element("css selector", ".note.error").text.startswith("The language model is unavailable")
    assert_same_origin(page, origin)


VISIBLE_ERROR = ("[document.getElementById('auth-error'), document.getElementById('notice')]"
                 ".filter(n => !n.hidden).map(n => n.innerText).join(' ')")


def test_schema_mismatch_then_migrate_then_chat_with_the_mock_labelled(page, tmp_path):
    """The troubleshooting log's story in the browser: a database behind the code (no
    users.remembered_facts) is named with the command that fixes it; after the migration the same
    page chats, and the mock engine's replies say they are canned."""
    from alembic import command

    from migrations import alembic_config

    database = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(database), "0001_initial")
    llm, port = mock_llm_api(tmp_path), free_port()
    rai = ServiceProcess("services.rai_api", port, service_env(
        tmp_path, RAI_DATABASE_URL=database, RAI_API_PORT=str(port), LLM_API_URL=llm.url("")),
        log=tmp_path / "rai_api.log")
    try:
        origin = origin_of(rai.start(), "localhost")
        open_page(page, origin)
        assert page.find_element("id", "engine").text == "Engine: mock (canned replies, not a real model)"
        page.find_element("id", "username").send_keys("olduser")
        page.find_element("id", "password").send_keys(PASSWORD)
        page.find_element("id", "register").click()
        error = wait_for(page, VISIBLE_ERROR, "the schema error")
        assert "The database schema does not match this RAI API: run “raictl migrate --repair”." in error
        assert "Details: the database schema does not match this RAI API" in error  # the RAI API's own words

        command.upgrade(alembic_config(database), "head")  # what `raictl migrate` does
        open_page(page, origin)
        sign_up(page, "newuser")
        chat(page, "hello after the migration")
        reply = page.find_element("css selector", ".msg.assistant")
        assert reply.get_attribute("data-state") == "done"
        assert reply.find_element("css selector", ".body").text.startswith('[mock] reply to "hello after the migration"')
        assert reply.find_element("css selector", ".note").text == "mock engine: a canned reply, not a real model"
        assert_same_origin(page, origin)
    finally:
        rai.stop()
        llm.stop()


def test_wrong_password_rate_limit_taken_name_and_rules_are_said_in_words(page, served):
    fake, rai = served
    origin = origin_of(rai, "127.0.0.1")
    open_page(page, origin)
    name = f"w{uuid.uuid4().hex[:10]}"
    assert http("POST", f"{origin}/api/auth/register", {"username": name, "password": PASSWORD})[0] == 201

    def attempt(username: str, password: str, button: str) -> str:
        for field, value in (("username", username), ("password", password)):
            page.find_element("id", field).clear()
            page.find_element("id", field).send_keys(value)
        page.find_element("id", button).click()
        return wait_for(page, "!document.getElementById('auth-error').hidden && document.getElementById('auth-error').innerText",
                        f"an error after {button}")

    assert attempt(name, "wrong password", "login") == "Wrong username or password."
    answers = [attempt(name, "wrong password", "login") for _ in range(10)]
    limited = [a for a in answers if a != "Wrong username or password."]  # the RAI API limits failed logins
    assert limited and re.fullmatch(r"Too many failed attempts: wait \d+ seconds? and try again\.", limited[0]), answers
    assert attempt(name, PASSWORD, "register").startswith("That username is taken")
    assert attempt(name + "2", "short", "register") == "Password must be 8-128 characters."
    assert attempt("a b", PASSWORD, "register").startswith("Username must be 3-32 characters")
    page.execute_script("sessionStorage.setItem('rai.token', 'forged.token'); sessionStorage.setItem('rai.user', 'x')")
    page.refresh()  # the page believes it is logged in until the RAI API says otherwise
    assert wait_for(page, "!document.getElementById('auth-view').hidden && document.getElementById('auth-error').innerText",
                    "the login form again") == "Your login is no longer valid: log in again."
    assert page.execute_script("return sessionStorage.getItem('rai.token')") is None
    page.execute_script("sessionStorage.setItem('rai.token', arguments[0])", expired_token())
    page.refresh()
    assert wait_for(page, "!document.getElementById('auth-view').hidden && document.getElementById('auth-error').innerText",
                    "the login form again") == "Your login has expired: log in again."
    assert_same_origin(page, origin)


def expired_token() -> str:
    """A token the stack's RAI API signed 25 hours ago, as far as its signature says."""
    import time

    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from services.rai_api.auth import TOKEN_SALT, TOKEN_TTL_S

    class Yesterday(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - TOKEN_TTL_S - 3600

    return URLSafeTimedSerializer(PAGE_SECRET, salt=TOKEN_SALT, signer=Yesterday).dumps({"uid": 1})


LONG = "\n\n".join(f"Paragraph {i}: " + "words to scroll by " * 12 for i in range(40))
SCROLL = "const b = document.getElementById('messages'); return [b.scrollTop, b.scrollHeight - b.clientHeight]"


def test_the_view_follows_a_reply_unless_the_user_scrolled_up(page, served):
    fake, rai = served
    origin = origin_of(rai, "localhost")
    open_page(page, origin)
    sign_up(page, f"f{uuid.uuid4().hex[:10]}")
    fake.reply(LONG, chunks=8, delay=0.1)
    chat(page, "a long answer, please")
    top, end = page.execute_script(SCROLL)
    assert end > 0 and end - top <= 1  # followed to the end (a fraction of a pixel aside)

    from selenium.webdriver.common.keys import Keys

    page.find_element("id", "message").send_keys("another one" + Keys.ENTER)
    wait_for(page, "[...document.querySelectorAll('.msg.assistant')].pop().dataset.state === 'streaming'",
             "the second reply to start streaming")
    page.execute_script("document.getElementById('messages').scrollTop = 100")  # the user reads above
    last_reply_done(page)
    top, end = page.execute_script(SCROLL)
    assert top == 100 and end > 100

    page.find_element("id", "new-chat").click()  # a new chat: empty, and a second entry once it has a message
    assert page.find_elements("css selector", "#messages .msg") == []
    fake.reply("short")
    chat(page, "a second chat")
    titles = wait_for(page, "(() => { const t = [...document.querySelectorAll('#session-list .session-title')]"
                            ".map(b => [b.innerText, b.getAttribute('aria-current')]); return t.length === 2 && t })()",
                      "two chats in the list")
    assert titles == [["a second chat", "true"], ["a long answer, please", None]]  # most recent first
    assert_same_origin(page, origin)


def test_a_reply_can_be_stopped_and_every_control_is_named(page, served):
    fake, rai = served
    origin = origin_of(rai, "127.0.0.1")
    open_page(page, origin)
    sign_up(page, f"s{uuid.uuid4().hex[:10]}")
    unnamed = page.execute_script("""
        return [...document.querySelectorAll('button, input, textarea, select')].filter(n =>
          !(n.labels && n.labels.length) && !n.getAttribute('aria-label') && !n.textContent.trim()).map(n => n.outerHTML);""")
    assert unnamed == []
    fake.hang(3.0)  # the fake answers after 3 s: long enough to stop the reply while it waits
    box = page.find_element("id", "message")
    box.send_keys("take your time")
    from selenium.webdriver.common.keys import Keys

    box.send_keys(Keys.ENTER)
    wait_for(page, "!document.getElementById('stop').hidden && document.getElementById('status').innerText",
             "the waiting state")
    assert page.find_element("css selector", ".msg.assistant").get_attribute("data-state") == "waiting"
    assert page.find_element("id", "send").get_attribute("disabled") == "true"
    page.find_element("id", "stop").click()
    wait_for(page, "document.querySelector('.msg.assistant').dataset.state === 'stopped'", "the reply to stop")
    assert page.find_element("css selector", ".msg.assistant .note").text == "Stopped."
    assert page.find_element("id", "stop").is_displayed() is False
    assert page.find_element("id", "send").get_attribute("disabled") is None

    page.find_element("css selector", ".memory summary").click()
    page.find_element("id", "mem-list").click()  # sends "what do you remember?": answered by the database
    last_reply_done(page)
    reply = page.find_elements("css selector", ".msg.assistant")[-1]
    assert reply.find_element("css selector", ".body").text.startswith("I don't remember anything about you yet")
    assert reply.find_element("css selector", ".note").text == "answered from memory (the database), not by the model"

    size = page.get_window_size()
    try:  # a phone: the chat list folds behind a "Chats" button
        page.set_window_size(390, 800)
        assert not page.find_element("id", "sessions").is_displayed()
        page.find_element("id", "toggle-sessions").click()
        assert page.find_element("id", "sessions").is_displayed()
        assert page.find_element("id", "toggle-sessions").get_attribute("aria-expanded") == "true"
        assert page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        page.set_window_size(size["width"], size["height"])
    assert not page.find_element("id", "toggle-sessions").is_displayed()  # wide: the list is always there
    assert page.find_element("id", "sessions").is_displayed()
    assert_same_origin(page, origin)


# ---- without a browser: what the server sends ----------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data


def test_page_headers_and_files_on_both_loopbacks(served):
    fake, rai = served
    for host in ("127.0.0.1", "[::1]"):
        status, html = http("GET", f"http://{host}:{rai.port}/")
        assert status == 200 and "<title>RAI chat</title>" in html
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{rai.port}/") as response:
        headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    assert headers["Content-Type"].startswith("text/html")
    with urllib.request.urlopen(f"http://127.0.0.1:{rai.port}/api/health") as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff"

    parsed = _Tags()
    parsed.feed((STATIC / "index.html").read_text())
    assert parsed.script_text.strip() == ""  # no inline script: every <script> has a src
    refs = [a.get("src") or a.get("href") for tag, a in parsed.tags if tag in ("script", "link")]
    assert refs and all(r.startswith("/static/") for r in refs)
    assert not [a for _, attrs in parsed.tags for a in attrs if a.startswith("on") or a == "style"]
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for ref in refs:
        with urllib.request.urlopen(f"http://127.0.0.1:{rai.port}{ref}") as response:
            assert response.headers["Content-Type"].startswith(types[Path(ref).suffix]), ref


def test_the_page_is_package_data():
    """A non-editable install ships every file of static/ (pyproject's package-data globs cover them)."""
    import fnmatch
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["services.rai_api"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), files


def test_up_names_localhost_only_when_the_rai_api_listens_on_both_loopbacks():
    from raictl.supervisor.control import chat_page_url

    assert chat_page_url(("127.0.0.1", "::1"), 6102) == "http://localhost:6102/"
    # one loopback only: `localhost` may resolve to the other one (the log's ECONNREFUSED ::1:6102)
    assert chat_page_url(("127.0.0.1",), 6102) == "http://127.0.0.1:6102/"
    assert chat_page_url(("::1",), 6102) == "http://[::1]:6102/"
    assert chat_page_url(("0.0.0.0",), 6102) == "http://127.0.0.1:6102/"
