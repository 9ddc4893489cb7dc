"""render's migrate output: values that look like rich markup are shown as they are, and a failed
`migrate --json` tells a refusal (it knows where the database stands) from any other failure."""

from __future__ import annotations

import json

from raictl import render
from raictl.errors import RaictlError
from raictl.migrate import Action, MigrateResult, Plan, Refusal

MARKUP = "[bold red]users[/] [link=x]"


def test_the_plan_shows_details_and_revisions_as_written(capsys):
    plan = Plan(url="sqlite://", script_location=None, state="drift", revisions=(MARKUP,), head="0002",
                matched=f"{MARKUP}m", actions=(Action("add_column", f"add column {MARKUP}"),),
                refused=(f"refused {MARKUP}",))
    render.migrate_plan(plan)
    err = capsys.readouterr().err
    assert f"add_column: add column {MARKUP}" in err
    assert f"database at: {MARKUP}" in err and f"matches {MARKUP}m" in err and f"refused: refused {MARKUP}" in err


def test_the_result_shows_the_backup_and_after_as_written(capsys):
    result = MigrateResult(before=None, after=MARKUP, actions=(), refused=(), extras=(),
                           backup=f"/tmp/{MARKUP}.db", dry_run=False)
    render.migrate_result(result, as_json=False)
    out = capsys.readouterr().out
    assert f"backup: /tmp/{MARKUP}.db" in out and f"after: {MARKUP}" in out


def test_a_failure_names_where_the_database_stands_only_for_a_refusal(capsys):
    render.migrate_failure(Refusal("unknown revision 'abc'", "raictl migrate --repair", before="abc"), dry_run=False)
    refusal = json.loads(capsys.readouterr().out)
    assert (refusal["before"], refusal["after"], refusal["refused"]) == ("abc", "abc", ["unknown revision 'abc'"])

    other = RaictlError("reading the schema failed", hint="start the server")
    other.before = "not a revision"  # an attribute of that name does not make it a refusal
    render.migrate_failure(other, dry_run=True)
    failure = json.loads(capsys.readouterr().out)
    assert (failure["before"], failure["refused"], failure["dry_run"]) == (None, [], True)
    assert failure["error"] == {"message": "reading the schema failed", "hint": "start the server"}
