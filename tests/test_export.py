"""`raictl export`: each format checked by the validator its engine's people trust, offline and for real.

compose: the compose-spec JSON schema (tests/data/compose-spec.json, vendored) with jsonschema.
kubernetes: kubernetes-validate's offline schemas of a current Kubernetes, strict.
systemd: `systemd-analyze verify`, whose stderr must be empty (it exits 0 on an unknown key).
Each validator is shown live: a broken file fails it. And no secret value reaches any file.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raictl.errors import RaictlError
from raictl.export import export
from raishared.settings import load_settings
from tests.support import REPO

COMPOSE_SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
MYSQL = "mysql+pymysql://rai:s3cret-db-pw@db.internal:3306/rai"
SECRETS = {"GEMINI_API_KEY": "AIzaSyTEST-gemini-key-not-for-files", "RAI_SECRET_KEY": "tok-sign-secret-never-written",
           "RAI_DATABASE_URL": MYSQL}


def files(target: str, out: Path, replicas: int = 1, cwd: Path | None = None, **environ) -> dict[str, str]:
    settings = load_settings(cwd=cwd, environ={"RAICTL_HOME": str(out.parent / ".raictl"), **environ})
    return {f.path: f.text for f in export(settings, target, out, replicas).files}


def compose_errors(document) -> list[str]:
    import jsonschema

    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


EXTRA_WITH_TOKEN = """
[services.worker]
command = ["python", "-m", "http.server", "7070"]
port = 7070
hosts = ["0.0.0.0"]
env = { API_TOKEN = "tok-extra-service-secret", MODE = "fast" }
"""


# -- compose --------------------------------------------------------------------------------------

def test_compose_file_is_valid_and_waits_for_health_and_the_migration(tmp_path):
    out = tmp_path / "deploy"
    doc = yaml.safe_load(files("compose", out)["compose.yaml"])
    assert compose_errors(doc) == []
    services = doc["services"]
    assert set(services) == {"migrate", "llm-api", "rai-api"}
    rai = services["rai-api"]
    assert rai["depends_on"] == {"llm-api": {"condition": "service_healthy"},
                                 "migrate": {"condition": "service_completed_successfully"}}
    assert rai["healthcheck"]["test"] == ["CMD", "python", "-m", "raictl.export.probe", "6102", "/api/health"]
    assert (rai["healthcheck"]["interval"], rai["healthcheck"]["retries"]) == ("5s", 3)  # raictl's liveness
    assert rai["environment"]["RAI_API_HOSTS"] == "0.0.0.0,::"  # every address, explicitly
    assert rai["environment"]["LLM_API_URL"] == "http://llm-api:6301"
    assert rai["ports"] == ["127.0.0.1:6102:6102", "[::1]:6102:6102"]  # published on the host's loopbacks only
    assert services["migrate"]["command"] == ["raictl", "migrate"] and services["migrate"]["restart"] == "no"
    assert "raictl-home:/data" in rai["volumes"] and "mariadb" not in services  # SQLite: a volume


def test_the_compose_schema_is_live(tmp_path):
    doc = yaml.safe_load(files("compose", tmp_path / "deploy")["compose.yaml"])
    doc["services"]["rai-api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    doc["services"]["llm-api"]["healthcheck"]["retries_max"] = 3
    errors = compose_errors(doc)
    assert any(e.startswith("services/rai-api/depends_on") for e in errors), errors
    assert any("retries_max" in e for e in errors), errors


def test_compose_on_mysql_has_mariadb_with_a_volume_and_replicas(tmp_path):
    exported = files("compose", tmp_path / "deploy", replicas=3, RAI_DATABASE_URL=MYSQL)
    doc = yaml.safe_load(exported["compose.yaml"])
    assert compose_errors(doc) == []
    services = doc["services"]
    assert services["mariadb"]["volumes"] == ["mariadb-data:/var/lib/mysql"] and "mariadb-data" in doc["volumes"]
    assert services["migrate"]["depends_on"] == {"mariadb": {"condition": "service_healthy"}}
    rai = services["rai-api"]
    assert rai["deploy"] == {"replicas": 3}
    assert rai["ports"] == ["127.0.0.1:6102-6104:6102", "[::1]:6102-6104:6102"]
    assert rai["environment"]["RAI_DATABASE_URL"].startswith("mysql+pymysql://rai:${MARIADB_PASSWORD:?")
    assert "s3cret-db-pw" not in exported["compose.yaml"]
    assert "MARIADB_PASSWORD=\n" in exported[".env"] and "RAI_SECRET_KEY=\n" in exported[".env"]


def test_dockerfile_installs_raictl_and_keeps_secrets_and_state_out(isolated):
    exported = files("compose", isolated / "deploy")  # the export inside the project: left out of the image
    dockerfile, ignore = exported["Dockerfile"], exported["Dockerfile.dockerignore"].splitlines()
    assert "RUN pip install /opt/raictl-src" in dockerfile and "USER 10001" in dockerfile
    assert {".env", "raictl.toml", ".raictl", ".venv", "deploy"} <= set(ignore)


# -- kubernetes -----------------------------------------------------------------------------------

def k8s_documents(exported: dict[str, str]) -> list[dict]:
    return [d for name, text in exported.items() if name.endswith((".yaml", ".template"))
            for d in yaml.safe_load_all(text) if d]


def test_kubernetes_manifests_pass_kubernetes_validate_strictly(tmp_path):
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    assert tuple(int(p) for p in version.split(".")[:2]) >= (1, 33)  # a current Kubernetes
    project = tmp_path / "project"
    project.mkdir()
    (project / "raictl.toml").write_text(EXTRA_WITH_TOKEN + '[services.jobs]\ncommand = "python -m jobs"\n')
    exported = files("kubernetes", tmp_path / "k8s", replicas=2, cwd=project, RAI_DATABASE_URL=MYSQL)
    documents = k8s_documents(exported)
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == ["ConfigMap", *["Deployment"] * 4, "Job", "Secret", *["Service"] * 3]  # jobs: no port
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)
    rai = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "rai-api")
    container = rai["spec"]["template"]["spec"]["containers"][0]
    assert rai["spec"]["replicas"] == 2
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/health"
    assert container["livenessProbe"]["exec"]["command"][-3:] == ["6102", "/api/health", "--answered"]
    assert rai["spec"]["template"]["spec"]["enableServiceLinks"] is False  # no RAI_API_PORT=tcp://...
    secret = next(d for d in documents if d["kind"] == "Secret")
    assert set(secret["stringData"]) == {"RAI_SECRET_KEY", "GEMINI_API_KEY", "RAI_DATABASE_URL", "API_TOKEN"}
    assert set(secret["stringData"].values()) == {""}  # names, never values
    job = next(d for d in documents if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["raictl", "migrate"]


def test_kubernetes_validate_is_live(tmp_path):
    import kubernetes_validate

    exported = files("kubernetes", tmp_path / "k8s")
    rai = yaml.safe_load_all(exported["rai-api.yaml"]).__next__()
    rai["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = [6102]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(rai, kubernetes_validate.latest_version(), strict=True)
    rai = yaml.safe_load_all(exported["rai-api.yaml"]).__next__()
    rai["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["execc"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(rai, kubernetes_validate.latest_version(), strict=True)


def test_kubernetes_on_sqlite_keeps_the_database_on_a_claim(tmp_path):
    exported = files("kubernetes", tmp_path / "k8s")
    assert "home-pvc.yaml" in exported
    config = yaml.safe_load(exported["configmap.yaml"])["data"]
    assert config["RAI_DATABASE_URL"] == "sqlite:////data/rai.db" and config["RAICTL_CONTAINER"] == "kubernetes"
    assert config["LLM_API_URL"] == "http://llm-api:6301" and config["LLM_API_HOSTS"] == "0.0.0.0,::"


# -- systemd --------------------------------------------------------------------------------------

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


def verify(folder: Path, *units: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", "--man=no", *units], cwd=folder,
                          capture_output=True, text=True, timeout=60)


def write(folder: Path, exported: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in exported.items():
        (folder / name).write_text(text)


@needs_systemd
def test_systemd_units_verify_with_nothing_on_stderr(tmp_path):
    out = tmp_path / "units"
    exported = files("systemd", out)
    write(out, exported)
    done = verify(out, "raictl-llm-api.service", "raictl-rai-api.service", "raictl.target")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    rai = exported["raictl-rai-api.service"]
    for line in ("Restart=on-failure", "StartLimitBurst=5", "StartLimitIntervalSec=30s",
                 f"EnvironmentFile={out / 'secrets.env'}", "Requires=raictl-llm-api.service",
                 f"ExecStartPre={sys.executable} -m raictl migrate --wait 60",
                 f"ExecStart={sys.executable} -m services.rai_api"):
        assert line + "\n" in rai, line
    assert "ExecStartPre" not in exported["raictl-llm-api.service"]


@needs_systemd
def test_systemd_replicas_are_instances_on_consecutive_ports(tmp_path):
    out = tmp_path / "units"
    exported = files("systemd", out, replicas=3, RAI_DATABASE_URL=MYSQL, RAI_SECRET_KEY=SECRETS["RAI_SECRET_KEY"])
    write(out, exported)
    assert "raictl-rai-api@.service" in exported and "raictl-rai-api.service" not in exported
    assert "Wants=raictl-llm-api.service raictl-rai-api@6102.service raictl-rai-api@6103.service " \
           "raictl-rai-api@6104.service\n" in exported["raictl.target"]
    template = exported["raictl-rai-api@.service"]
    assert "Environment=RAI_API_PORT=%i\n" in template and " %i /api/health\n" in template
    done = verify(out, "raictl-rai-api@6102.service", "raictl-rai-api@6104.service", "raictl-llm-api.service",
                  "raictl.target")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    # both secrets came from the environment: named in the EnvironmentFile, their values nowhere
    assert "RAI_DATABASE_URL=\n" in exported["secrets.env"] and "RAI_SECRET_KEY=\n" in exported["secrets.env"]


@needs_systemd
def test_systemd_analyze_verify_is_live(tmp_path):
    out = tmp_path / "units"
    exported = files("systemd", out)
    exported["raictl-llm-api.service"] = exported["raictl-llm-api.service"].replace(
        "Restart=on-failure", "Restart=on-failure\nRestartSteps=5")  # systemd 254's key: unknown to older ones
    exported["raictl-llm-api.service"] = exported["raictl-llm-api.service"].replace("Type=exec", "Type=exec\nBogus=1")
    write(out, exported)
    done = verify(out, "raictl-llm-api.service")
    assert done.returncode == 0  # why stderr is what the test reads
    assert "Unknown key 'Bogus'" in done.stderr, done.stderr


# -- secrets, refusals ----------------------------------------------------------------------------



@pytest.mark.parametrize("target", ["compose", "kubernetes", "systemd"])
def test_no_secret_value_is_written_by_any_format(tmp_path, target):
    project = tmp_path / "project"
    project.mkdir()
    (project / "raictl.toml").write_text(EXTRA_WITH_TOKEN)
    exported = files(target, project / "deploy", replicas=2, cwd=project, **SECRETS)
    text = "\n".join(exported.values())
    for value in [*SECRETS.values(), "s3cret-db-pw", "tok-extra-service-secret"]:
        assert value not in text, (target, value)
    assert "API_TOKEN" in text and "MODE" in text  # the name is there, for the operator to fill in


def test_sqlite_with_replicas_is_refused_with_the_reason(tmp_path):
    for target in ("compose", "kubernetes", "systemd"):
        with pytest.raises(RaictlError) as refused:
            files(target, tmp_path / target, replicas=2)
        assert "2 RAI API replicas on SQLite" in refused.value.message
        assert "MySQL" in refused.value.hint


def test_an_address_list_a_container_cannot_reach_is_refused(tmp_path):
    with pytest.raises(RaictlError) as refused:
        files("compose", tmp_path / "c", RAI_API_HOSTS="127.0.0.1,::1")
    assert "inside a container no other container" in refused.value.message
    assert "RAI_API_HOSTS=127.0.0.1,::1" in refused.value.message
    project = tmp_path / "p"
    project.mkdir()
    (project / "raictl.toml").write_text('[services.web]\ncommand = "python -m http.server 7070"\nport = 7070\n')
    with pytest.raises(RaictlError) as refused:
        files("kubernetes", project / "k", cwd=project)
    assert refused.value.message.startswith("web listens only on 127.0.0.1, ::1")
    assert 'hosts = ["0.0.0.0"]' in refused.value.hint
    files("systemd", project / "s", cwd=project)  # on this machine the loopbacks are right


def test_a_local_path_the_image_would_not_have_is_refused(tmp_path):
    project = tmp_path / "p"
    (project / "tools").mkdir(parents=True)
    (project / "raictl.toml").write_text(
        '[services.job]\ncommand = ["python", "/opt/elsewhere/job.py"]\n'
        '[services.ok]\ncommand = ["python", "tools/run.py"]\ncwd = "tools"\n')
    with pytest.raises(RaictlError) as refused:
        files("compose", project / "c", cwd=project)
    assert "job's command uses /opt/elsewhere/job.py, a path of this machine the image would not have" \
        in refused.value.message
    (project / "raictl.toml").write_text(f'[services.ok]\ncommand = ["python", "{project}/tools/run.py"]\n'
                                         'cwd = "tools"\n')
    doc = yaml.safe_load(files("compose", project / "c", cwd=project)["compose.yaml"])
    assert doc["services"]["ok"]["command"] == ["python", "/app/tools/run.py"]  # moved with the project
    assert doc["services"]["ok"]["working_dir"] == "/app/tools"


# -- the command ----------------------------------------------------------------------------------

def raictl(cwd: Path, *args: str, **environ: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "raictl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **environ})


def test_cli_writes_the_files_and_keeps_a_filled_in_secrets_file(isolated):
    done = raictl(isolated, "export", "compose", "--out", "out")
    assert done.returncode == 0, done.stderr
    env_file = isolated / "out" / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert (isolated / "out" / "compose.yaml").is_file() and "wrote compose.yaml" in done.stdout
    env_file.write_text("RAI_SECRET_KEY=filled-in-by-the-operator\n")
    again = raictl(isolated, "export", "compose", "--out", "out")
    assert again.returncode == 0 and "kept .env" in again.stdout
    assert env_file.read_text() == "RAI_SECRET_KEY=filled-in-by-the-operator\n"


def test_cli_refusals_are_one_line_with_a_hint(isolated):
    done = raictl(isolated, "export", "kubernetes", "--replicas", "3")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: cannot export 3 RAI API replicas on SQLite") and "\nhint: " in done.stderr
    unknown = raictl(isolated, "export", "nomad")
    assert unknown.returncode == 2 and "use one of compose, kubernetes, systemd" in unknown.stderr
    assert not (isolated / "deploy").exists()


def test_the_vendored_schema_is_the_compose_spec():
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    assert schema["title"] == "Compose Specification" and "service_completed_successfully" in COMPOSE_SCHEMA.read_text()
    assert (REPO / "tests" / "data" / "README.md").is_file()


def test_the_probe_says_what_it_saw_when_nothing_answers():
    from tests.support import free_port

    port = free_port()
    done = subprocess.run([sys.executable, "-m", "raictl.export.probe", str(port), "/api/health"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"127.0.0.1:{port}/api/health: ") and done.stderr.count("\n") == 1, done.stderr


def test_the_replicas_setting_is_the_default_and_makes_one_service_with_n_copies(isolated):
    done = raictl(isolated, "export", "compose", "--out", "out", RAI_API_REPLICAS="3", RAI_DATABASE_URL=MYSQL)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load((isolated / "out" / "compose.yaml").read_text())["services"]
    assert services["rai-api"]["deploy"] == {"replicas": 3}
    assert [name for name in services if name.startswith("rai")] == ["rai-api"]  # not rai_api@2, @3


def test_depends_on_conditions_and_liveness_keys_reach_compose_and_kubernetes(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "raictl.toml").write_text(
        "[rai_api]\nliveness_interval = 12.5\nliveness_failures = 4\n"
        '[services.web]\ncommand = "python -m http.server 7070"\nport = 7070\nhosts = ["0.0.0.0"]\n'
        'depends_on = { rai_api = "ready", llm_api = "started" }\n')
    doc = yaml.safe_load(files("compose", project / "c", cwd=project)["compose.yaml"])
    assert compose_errors(doc) == []
    assert doc["services"]["web"]["depends_on"] == {"rai-api": {"condition": "service_healthy"},
                                                    "llm-api": {"condition": "service_started"}}
    assert (doc["services"]["rai-api"]["healthcheck"]["interval"], doc["services"]["rai-api"]["healthcheck"]["retries"]) \
        == ("12.5s", 4)
    rai = yaml.safe_load_all(files("kubernetes", project / "k", cwd=project)["rai-api.yaml"]).__next__()
    liveness = rai["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert (liveness["periodSeconds"], liveness["failureThreshold"]) == (13, 4)


def test_the_liveness_probe_passes_a_503_the_readiness_probe_does_not(tmp_path):
    import textwrap

    from tests.support import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import http.server
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(503); self.end_headers()
            def log_message(self, *a): pass
        http.server.HTTPServer(("127.0.0.1", {port}), H).serve_forever()""")])
    try:
        probe = [sys.executable, "-m", "raictl.export.probe", str(port), "/api/health", "--wait", "10"]
        answered = subprocess.run([*probe, "--answered"], capture_output=True, text=True, timeout=30)
        assert answered.returncode == 0, answered.stderr
        ready = subprocess.run([*probe[:-2]], capture_output=True, text=True, timeout=30)
        assert ready.returncode == 1 and "HTTP 503" in ready.stderr
    finally:
        server.kill()
        server.wait()
