"""The supervisor's records without a process: the state vocabulary's transitions, and desired.json
entries (`DesiredEntry`) as written and read back. Milliseconds each."""

from __future__ import annotations

import json

import pytest

from raictl.supervisor import states
from raictl.supervisor.spec import ServiceSpec
from raictl.supervisor.state import (DESIRED_FILE, DamagedState, DesiredEntry, ServiceRecord, read_desired,
                                     read_state, write_desired)

LIFE = [states.BACKOFF, states.STARTING, states.RUNNING, states.UNHEALTHY, states.RUNNING,
        states.BACKOFF, states.STARTING, states.FATAL, states.BACKOFF, states.STARTING, states.STOPPED]


def test_a_service_lives_through_the_allowed_transitions():
    record = ServiceRecord("web")
    for new in LIFE:
        record.change_state(new)
        assert record.state == new


@pytest.mark.parametrize("old, new", [(states.STOPPED, states.RUNNING), (states.STOPPED, states.STARTING),
                                      (states.FATAL, states.STARTING), (states.RUNNING, states.STARTING),
                                      (states.BACKOFF, states.RUNNING), (states.FATAL, states.STOPPED)])
def test_a_transition_the_table_does_not_allow_is_refused_and_changes_nothing(old, new):
    record = ServiceRecord("web", old)
    with pytest.raises(states.InvalidTransition, match=f"{old} -> {new}"):
        record.change_state(new)
    assert record.state == old


def test_groups_cover_every_state_and_tell_alive_from_stopped():
    assert set(states.TRANSITIONS) == set(states.STATES)
    assert states.ALIVE | {states.BACKOFF} == states.ACTIVE
    assert not states.ACTIVE & states.STOPPED_STATES
    assert states.ACTIVE | states.STOPPED_STATES == set(states.STATES)


def test_a_state_written_by_another_version_can_only_be_stopped_or_restarted():
    for new in (states.BACKOFF, states.STOPPED):
        ServiceRecord("web", "paused").change_state(new)
    with pytest.raises(states.InvalidTransition):
        ServiceRecord("web", "paused").change_state(states.RUNNING)


def _entry(**spec_keys) -> DesiredEntry:
    spec = ServiceSpec("web", ("prog", "--flag"), 5173, depends_on=("rai_api",), env={"A": "b"}, **spec_keys)
    return DesiredEntry(spec, {"PATH": "/bin", "PORT": "5173"}, "/srv/app", 12.5, restart=True)


def test_desired_entries_round_trip_through_the_file(isolated):
    home = isolated / ".raictl"
    entries = {"web": _entry(), "api": DesiredEntry(ServiceSpec("api", ("x",)), {}, "/srv", 1.0)}
    write_desired(home, entries)
    assert read_desired(home) == entries
    doc = json.loads((home / DESIRED_FILE).read_text())
    assert set(doc["services"]["web"]) == {"spec", "env", "cwd", "requested_at", "restart"}
    assert (home / DESIRED_FILE).stat().st_mode & 0o777 == 0o600  # it holds the settings' secrets


def test_an_entry_written_before_the_restart_flag_reads_as_not_restarting(isolated):
    home = isolated / ".raictl"
    home.mkdir()
    old = _entry().to_dict()
    del old["restart"], old["requested_at"]
    (home / DESIRED_FILE).write_text(json.dumps({"services": {"web": old}}))
    entry = read_desired(home)["web"]
    assert (entry.restart, entry.requested_at, entry.spec.port) == (False, 0.0, 5173)


@pytest.mark.parametrize("services", ['{"web": {"env": {}, "cwd": "/"}}', '{"web": []}',
                                      '{"web": {"spec": {"name": "web", "command": ["x"]}, "env": [], "cwd": "/"}}'])
def test_a_damaged_desired_file_is_one_error_naming_it(isolated, services):
    home = isolated / ".raictl"
    home.mkdir()
    (home / DESIRED_FILE).write_text(f'{{"services": {services}}}')
    with pytest.raises(DamagedState, match="desired.json is damaged"):
        read_desired(home)
    assert read_state(home).services == {}  # state.json is another file: still readable
