"""The chat page's budgets, measured in headless chromium against the real stack on free ports.

- weight: every file of services/rai_api/static (uncompressed), goal <= 60 KB; also the bytes the
  browser decoded for one visit (the document and every resource it loaded).
- DOMContentLoaded: median of N loads of http://localhost:PORT/ (navigation start to the end of
  DOMContentLoaded), goal <= 150 ms; baseline: the same browser loading the hello-world app's JSON
  (`bench.hello_world`, bare Flask + waitress) in the same run.
- Enter to first streamed text: from the Enter keydown to the first reply text in the DOM (the
  page's own clock), median of M turns, goal <= the fake Gemini's first-chunk delay + 100 ms.

The stack is tests/browser_support.page_stack: fake Gemini -> LLM API (gemini engine, real
google-genai client) -> RAI API (SQLite).

    python bench/bench_page.py [--loads 20] [--turns 10] [--first-chunk 0.2]

Exit code 0 when every goal is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser_support import browser_paths, page_stack, start_browser  # noqa: E402
from tests.support import REPO, ServiceProcess, free_port, service_env, wait_until  # noqa: E402

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

STATIC = REPO / "services" / "rai_api" / "static"
WEIGHT_GOAL_KB, DCL_GOAL_MS, FIRST_TEXT_SLACK_MS = 60, 150, 100
DCL = "const n = performance.getEntriesByType('navigation')[0]; return n && n.domContentLoadedEventEnd"
LOADED_BYTES = """return document.readyState === 'complete' && [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]
                  .reduce((sum, e) => sum + e.decodedBodySize, 0)"""
# Enter's time (capture phase, before the page's own handler) and the first reply text's time.
TIME_TURN = """
window.__turn = {};
document.addEventListener('keydown', e => { if (e.key === 'Enter' && !window.__turn.enter) window.__turn.enter = performance.now(); }, true);
const box = document.getElementById('messages');
const seen = box.querySelectorAll('.msg.assistant').length;
const observer = new MutationObserver(() => {
  const replies = box.querySelectorAll('.msg.assistant');
  if (replies.length > seen && replies[replies.length - 1].querySelector('.body').textContent) {
    window.__turn.text = performance.now();
    observer.disconnect();
  }
});
observer.observe(box, {subtree: true, childList: true, characterData: true});
"""
REPLY_DONE = "const m = [...document.querySelectorAll('.msg.assistant')].pop(); return m && m.dataset.state"


def page_weight() -> tuple[int, dict[str, int]]:
    sizes = {p.name: p.stat().st_size for p in sorted(STATIC.rglob("*")) if p.is_file()}
    return sum(sizes.values()), sizes


def median_dcl(driver: WebDriver, url: str, loads: int) -> float:
    driver.get(url)  # warm: the first load fills the cache and the connection pool
    samples = []
    for _ in range(loads):
        driver.get(url)
        samples.append(wait_until(lambda: driver.execute_script(DCL), 10, what=f"DOMContentLoaded of {url}"))
    return statistics.median(samples)


def log_in(driver: WebDriver, origin: str) -> None:
    driver.get(origin + "/")
    driver.find_element("id", "username").send_keys(f"bench{uuid.uuid4().hex[:8]}")
    driver.find_element("id", "password").send_keys("correct horse")
    driver.find_element("id", "register").click()
    wait_until(lambda: driver.execute_script("return !document.getElementById('chat-view').hidden"), 15,
               what="the chat view")


def first_text_ms(driver: WebDriver, turns: int) -> list[float]:
    from selenium.webdriver.common.keys import Keys

    samples = []
    for i in range(turns):
        driver.execute_script(TIME_TURN)
        box = driver.find_element("id", "message")
        box.send_keys(f"turn {i}: tell me something")
        box.send_keys(Keys.ENTER)
        state = wait_until(lambda: driver.execute_script(REPLY_DONE) not in (None, "waiting", "streaming")
                           and driver.execute_script(REPLY_DONE), 30, what="the reply to finish")
        if state != "done":
            raise SystemExit(f"turn {i} ended {state!r}: {driver.find_elements('css selector', '.note')[-1].text}")
        turn = driver.execute_script("return window.__turn")
        samples.append(turn["text"] - turn["enter"])
    return samples


def server_first_delta_ms(rai: ServiceProcess, token: str, turns: int) -> list[float]:
    """The same turn without a browser: POST /api/chat (stream) to the first `delta` event's bytes."""
    import http.client
    import json
    import time

    samples = []
    for i in range(turns):
        conn = http.client.HTTPConnection("127.0.0.1", rai.port, timeout=30)
        started = time.perf_counter()
        conn.request("POST", "/api/chat", json.dumps({"message": f"server turn {i}", "stream": True}),
                     {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        while not (line := response.readline()).startswith(b"event: delta") and line:
            pass
        samples.append((time.perf_counter() - started) * 1000)
        response.read()
        conn.close()
    return samples


def token_for(rai: ServiceProcess) -> str:
    from tests.support import http

    credentials = {"username": f"srv{uuid.uuid4().hex[:8]}", "password": "correct horse"}
    http("POST", rai.url("/api/auth/register"), credentials)
    return http("POST", rai.url("/api/auth/login"), credentials)[1]["access_token"]


def hello_world(home: Path) -> ServiceProcess:
    port = free_port()
    return ServiceProcess("bench.hello_world", port, service_env(home, BENCH_HELLO_PORT=str(port)),
                          log=home / "hello.log").start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--first-chunk", type=float, default=0.2, help="the fake Gemini's delay before each chunk (s)")
    args = parser.parse_args()
    paths = browser_paths()
    if paths is None:
        raise SystemExit("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    total, sizes = page_weight()
    with tempfile.TemporaryDirectory(prefix="bench-page-") as tmp:
        home = Path(tmp)
        (home / "hello").mkdir()
        baseline = hello_world(home / "hello")
        driver = start_browser(paths)
        try:
            with page_stack(home) as (fake, rai):
                origin = f"http://localhost:{rai.port}"
                driver.get(origin + "/")  # the first visit: nothing cached yet
                loaded = wait_until(lambda: driver.execute_script(LOADED_BYTES), 10, what="the resource sizes")
                base_ms = median_dcl(driver, f"http://localhost:{baseline.port}/api/health", args.loads)
                page_ms = median_dcl(driver, origin + "/", args.loads)
                fake.reply("one two three four five six seven eight nine ten " * 3, chunks=5, delay=args.first_chunk)
                log_in(driver, origin)
                first = first_text_ms(driver, args.turns)
                server = server_first_delta_ms(rai, token_for(rai), args.turns)
        finally:
            driver.quit()
            baseline.stop()
    first_ms, budget_ms = statistics.median(first), args.first_chunk * 1000 + FIRST_TEXT_SLACK_MS
    print(f"page weight: {total / 1024:.1f} KB in {len(sizes)} files ({', '.join(f'{k} {v}' for k, v in sizes.items())});"
          f" one visit decoded {loaded / 1024:.1f} KB  -> {total / 1024 / WEIGHT_GOAL_KB:.2f}x the {WEIGHT_GOAL_KB} KB goal")
    print(f"DOMContentLoaded: median {page_ms:.1f} ms over {args.loads} loads; hello-world JSON {base_ms:.1f} ms"
          f"  -> {page_ms / base_ms:.2f}x the baseline, {page_ms / DCL_GOAL_MS:.2f}x the {DCL_GOAL_MS} ms goal")
    print(f"Enter to first streamed text: median {first_ms:.0f} ms over {args.turns} turns (min {min(first):.0f},"
          f" max {max(first):.0f}); fake Gemini's first chunk after {args.first_chunk * 1000:.0f} ms"
          f"  -> overhead {first_ms - args.first_chunk * 1000:.0f} ms, {first_ms / budget_ms:.2f}x the"
          f" {budget_ms:.0f} ms goal")
    print(f"  of which the stack (POST /api/chat to the first delta event, no browser): median"
          f" {statistics.median(server):.0f} ms; the browser and the page: {first_ms - statistics.median(server):.0f} ms")
    ok = total <= WEIGHT_GOAL_KB * 1024 and page_ms <= DCL_GOAL_MS and first_ms <= budget_ms
    print("all goals met" if ok else "GOAL MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
