"""`raictl logs --since`, and the stamps an extra service's lines get from its log relay."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from raictl.errors import RaictlError
from raictl.supervisor.logs import _stamp, parse_since, since
from raictl.supervisor.stamp import relay, stamp

NOW = datetime(2026, 12, 2, 1, 30, 0)


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat(sep=" ", timespec="milliseconds").replace(".", ",")


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1.5m", 90)])
def test_a_duration_counts_back_from_now(text, seconds):
    assert parse_since(text, now=NOW.timestamp()) == NOW.timestamp() - seconds


def test_an_iso_time_is_local_unless_it_has_an_offset():
    assert parse_since("2026-12-02T01:20") == datetime(2026, 12, 2, 1, 20).timestamp()
    assert parse_since("2026-12-02 01:20:00+00:00") == datetime.fromisoformat("2026-12-02T01:20:00+00:00").timestamp()


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "-5m", "", "12:00"])
def test_anything_else_is_a_usage_error(text):
    with pytest.raises(RaictlError) as caught:
        parse_since(text)
    assert caught.value.exit_code == 2 and "e.g. --since 10m" in caught.value.hint


def test_lines_from_the_moment_on_with_their_traceback_lines(tmp_path):
    log = tmp_path / "web.log"
    log.write_text(f"{at(30)} INFO old\n{at(5)} ERROR boom\nTraceback (most recent call last):\n"
                   f"  ValueError\n[raictl {at(1).replace(',', '.')}] exited: code 1\n")
    found = [line for _, line in since(log, (NOW - timedelta(minutes=10)).timestamp())]
    assert found == [f"{at(5)} ERROR boom", "Traceback (most recent call last):", "  ValueError",
                     f"[raictl {at(1).replace(',', '.')}] exited: code 1"]


def test_a_moment_before_the_rotation_reaches_into_the_rotated_copy(tmp_path):
    log = tmp_path / "web.log"
    (tmp_path / "web.log.2").write_text(f"{at(60)} ancient\n")
    (tmp_path / "web.log.1").write_text(f"{at(40)} older\n{at(20)} old\n")
    log.write_text(f"{at(10)} new\n")
    found = [line for _, line in since(log, (NOW - timedelta(minutes=30)).timestamp())]
    assert found == [f"{at(20)} old", f"{at(10)} new"]  # web.log.2 is not read: web.log.1 starts before


def test_the_relay_stamps_like_the_built_ins_logging():
    line = stamp(b"serving on 5173\n", NOW.replace(microsecond=42_000))
    assert line == b"2026-12-02 01:30:00,042 serving on 5173\n"
    assert _stamp(line.decode()) == NOW.replace(microsecond=42_000).timestamp()  # what interleave reads
    sink = io.BytesIO()
    relay(io.BytesIO(b"one\ntwo without newline"), sink)
    lines = sink.getvalue().decode().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == ["one", "two without newline"]
    assert all(_stamp(line) for line in lines)


def raictl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raictl", *args], capture_output=True, text=True, timeout=60)


def test_the_cli_shows_every_log_from_then_on_interleaved(isolated):
    logs = Path(os.environ["RAICTL_HOME"]) / "logs"
    logs.mkdir(parents=True)
    now = datetime.now()
    stamp_of = lambda minutes: (now - timedelta(minutes=minutes)).isoformat(sep=" ", timespec="milliseconds")
    (logs / "llm_api.log").write_text(f"{stamp_of(20)} INFO llm old\n{stamp_of(3)} INFO llm recent\n")
    (logs / "rai_api.log").write_text(f"{stamp_of(15)} INFO rai old\n{stamp_of(4)} INFO rai recent\n"
                                      + "".join(f"{stamp_of(2)} INFO rai {n}\n" for n in range(60)))
    recent = raictl("logs", "--since", "10m")
    assert recent.returncode == 0, recent.stderr
    shown = recent.stdout.splitlines()
    assert len(shown) == 62 and "old" not in recent.stdout  # all of them since then, not the last 50
    assert shown[0].endswith("rai recent") and shown[1].endswith("llm recent")
    capped = raictl("logs", "llm_api", "--since", (now - timedelta(minutes=30)).isoformat(timespec="minutes"),
                    "-n", "1")
    assert capped.stdout.splitlines() == [f"{stamp_of(3)} INFO llm recent"]
    bad = raictl("logs", "--since", "yesterday")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --since 'yesterday' is neither") and \
        "Traceback" not in bad.stderr
