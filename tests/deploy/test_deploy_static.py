"""Static proof of the deployment files: compose config and schema, hadolint, systemd units, .env.example.

No Docker engine is used: ``docker compose config`` is the real Compose v2 binary resolving the files,
and the checks below read its resolved model, so they test what ``docker compose up`` would run.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    COMPOSE_FILE,
    DOCKERFILE,
    ENV_EXAMPLE,
    OVERRIDES,
    REPO,
    REQUIRED_VARS,
    clean_env,
    compose_config,
    compose_variables,
    env_example_variables,
    run_compose,
)

SYSTEMD = REPO / "deploy" / "systemd"
UNITS = sorted(SYSTEMD.glob("*.service"))
TEST_VARS = {
    "BATT_REDIS_PASSWORD": "s3cr3t-test-pw",
    "BATT_FLOWER_BASIC_AUTH": "admin:flower-test-pw",
    "BATT_SIGNING_KEY": "signing-test-key-5b9e0c",
}
OVERRIDE_VARS = {
    "broker-tls": {"BATT_REDIS_TLS_DIR": "/tmp/tls"},
    "remote-worker": {
        "BATT_BROKER_URL": "rediss://:pw@broker.example.org:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/batt-queue/ca.crt",
        "BATT_RESULT_BACKEND": "rediss://:pw@broker.example.org:6380/1?ssl_cert_reqs=required&ssl_ca_certs=/etc/batt-queue/ca.crt",
        "BATT_TLS_CA_FILE": "/tmp/ca.crt",
    },
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The resolved compose model with only the required variables set."""
    return compose_config(clean_env(**TEST_VARS))


# --------------------------------------------------------------------------- compose config


def test_compose_config_passes_with_required_variables() -> None:
    proc = run_compose(["--profile", "submit", "config", "-q"], clean_env(**TEST_VARS))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("missing", REQUIRED_VARS)
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_compose_config_fails_without_each_required_variable(missing: str, how: str) -> None:
    env = clean_env(**TEST_VARS)
    if how == "unset":
        del env[missing]
    else:
        env[missing] = ""
    proc = run_compose(["--profile", "submit", "config", "-q"], env)
    assert proc.returncode != 0
    assert missing in proc.stderr
    assert "required variable" in proc.stderr


@pytest.mark.parametrize("name", sorted(OVERRIDES))
def test_override_files_resolve_on_top_of_the_base_file(name: str) -> None:
    files = (COMPOSE_FILE, OVERRIDES[name])
    env = clean_env(**TEST_VARS, **OVERRIDE_VARS[name])
    ok = run_compose(["config", "-q"], env, files)
    assert ok.returncode == 0, ok.stderr
    for var in OVERRIDE_VARS[name]:  # each of them is required by the override
        broken = run_compose(["config", "-q"], {k: v for k, v in env.items() if k != var}, files)
        assert broken.returncode != 0 and var in broken.stderr, f"{name} must require {var}"


def test_remote_worker_override_points_workers_at_the_shared_broker() -> None:
    env = clean_env(**TEST_VARS, **OVERRIDE_VARS["remote-worker"])
    cfg = compose_config(env, (COMPOSE_FILE, OVERRIDES["remote-worker"]), profiles=())
    worker = cfg["services"]["worker"]
    assert worker["environment"]["BATT_BROKER_URL"] == OVERRIDE_VARS["remote-worker"]["BATT_BROKER_URL"]
    assert worker["environment"]["BATT_RESULT_BACKEND"].startswith("rediss://")
    assert any(v["target"] == "/etc/batt-queue/ca.crt" and v.get("read_only") for v in worker["volumes"])


def test_broker_tls_override_keeps_the_base_redis_command(config: dict[str, Any]) -> None:
    env = clean_env(**TEST_VARS, **OVERRIDE_VARS["broker-tls"])
    tls = compose_config(env, (COMPOSE_FILE, OVERRIDES["broker-tls"]), profiles=())["services"]["redis"]
    base = config["services"]["redis"]["command"]
    assert tls["command"][: len(base)] == base, "compose.broker-tls.yml must repeat docker-compose.yml's command"
    extra = tls["command"][len(base) :]
    assert extra[extra.index("--tls-port") + 1] == "6380"
    assert [p["target"] for p in tls["ports"]] == [6380]
    assert all(p["target"] != 6379 for p in tls["ports"]), "the plain port must stay unpublished"


@pytest.mark.parametrize("path", [COMPOSE_FILE, *OVERRIDES.values()], ids=lambda p: p.name)
def test_compose_files_match_the_compose_spec_schema(path: Path) -> None:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    proc = subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_build_context_and_dockerfile_exists(config: dict[str, Any]) -> None:
    built = {name: s["build"] for name, s in config["services"].items() if "build" in s}
    assert set(built) == {"worker", "flower", "producer"}
    for name, build in built.items():
        context = Path(build["context"])
        assert context.is_dir(), f"{name}: build context {context} is missing"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        assert dockerfile.resolve() == DOCKERFILE
    # one image, built once, shared by all three
    assert len({config["services"][n]["image"] for n in built}) == 1


# --------------------------------------------------------------------------- services


def test_redis_requires_its_password_and_keeps_data(config: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    assert "BATT_REDIS_PASSWORD:-" not in text and "BATT_REDIS_PASSWORD-" not in text, "no default password"
    redis = config["services"]["redis"]
    cmd = redis["command"]
    assert cmd[0] == "redis-server"
    assert cmd[cmd.index("--requirepass") + 1] == TEST_VARS["BATT_REDIS_PASSWORD"]
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert cmd[cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis["image"].startswith("redis:")
    assert "ports" not in redis, "Redis must not be published by the base file"
    assert redis["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    assert [(v["type"], v["target"]) for v in redis["volumes"]] == [("volume", "/data")]
    assert redis["volumes"][0]["source"] in config["volumes"]


def test_worker_is_scalable_guarded_and_requeues_on_stop(config: dict[str, Any]) -> None:
    worker = config["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker and "hostname" not in worker
    cmd = worker["command"]
    assert cmd[:4] == ["celery", "-A", "batt_tasks", "worker"]
    autoscale = [a for a in cmd if a.startswith("--autoscale=")]
    assert len(autoscale) == 1
    high, low = (int(x) for x in autoscale[0].split("=", 1)[1].split(","))
    assert high >= low >= 1
    env = worker["environment"]
    assert env["BATT_GUARD_ENABLED"] == "1"
    assert env["REMAP_SIGTERM"] == "SIGQUIT"
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert worker["stop_grace_period"]
    test = worker["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert "inspect ping" in test[1] and "celery@$$HOSTNAME" in test[1], "ping this worker only"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert env["BATT_BROKER_URL"] == f"redis://:{TEST_VARS['BATT_REDIS_PASSWORD']}@redis:6379/0"
    assert env["BATT_RESULT_BACKEND"] == f"redis://:{TEST_VARS['BATT_REDIS_PASSWORD']}@redis:6379/1"


def test_worker_concurrency_and_settings_come_from_the_env(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "BATT_WORKER_MAX_CONCURRENCY=8\nBATT_WORKER_MIN_CONCURRENCY=2\nBATT_GUARD_CHECK_SECONDS=7\n"
        "BATT_VISIBILITY_TIMEOUT=900\n"
    )
    proc = run_compose(["config", "--format", "json"], clean_env(**TEST_VARS), env_file=env_file)
    assert proc.returncode == 0, proc.stderr
    worker = json.loads(proc.stdout)["services"]["worker"]
    assert "--autoscale=8,2" in worker["command"]
    assert worker["environment"]["BATT_GUARD_CHECK_SECONDS"] == "7"
    assert worker["environment"]["BATT_VISIBILITY_TIMEOUT"] == "900"


def test_flower_needs_credentials_persists_and_stays_local_by_default(config: dict[str, Any]) -> None:
    flower = config["services"]["flower"]
    cmd = flower["command"]
    assert cmd[:4] == ["celery", "-A", "batt_tasks", "flower"]
    assert "--persistent=True" in cmd
    db = next(a.split("=", 1)[1] for a in cmd if a.startswith("--db="))
    assert any(db.startswith(v["target"] + "/") and v["type"] == "volume" for v in flower["volumes"])
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == TEST_VARS["BATT_FLOWER_BASIC_AUTH"]
    assert not any("basic" in a for a in cmd), "credentials must not be on the command line"
    (port,) = flower["ports"]
    assert (port["target"], port["published"], port["host_ip"]) == (5555, "5555", "127.0.0.1")
    assert "--port=5555" in cmd
    assert flower["depends_on"]["redis"]["condition"] in ("service_healthy", "service_started")


def test_flower_exposure_is_an_opt_in() -> None:
    env = clean_env(**TEST_VARS, BATT_FLOWER_BIND="0.0.0.0", BATT_FLOWER_PORT="8555")
    (port,) = compose_config(env)["services"]["flower"]["ports"]
    assert (port["host_ip"], port["published"]) == ("0.0.0.0", "8555")


def test_producer_is_a_profile_writing_into_the_results_volume(config: dict[str, Any]) -> None:
    from producer.cli import DEFAULT_OUT

    producer = config["services"]["producer"]
    assert producer["profiles"] == ["submit"]
    assert "producer" not in compose_config(clean_env(**TEST_VARS), profiles=())["services"]
    cmd = producer["command"]
    assert cmd[0] == "batt-submit"
    out = cmd[cmd.index("--out") + 1]
    (volume,) = [v for v in producer["volumes"] if v["target"] != "/batts"]
    assert volume["target"] == out, "the results volume is mounted at the --out directory"
    assert volume["source"] in config["volumes"]
    # `docker compose run --rm producer batt-submit -c -32` (no --out) writes to the same place
    default_out = DEFAULT_OUT
    assert str(Path(producer["working_dir"]) / default_out) == out
    assert producer["healthcheck"] == {"disable": True}


def test_results_can_be_a_host_directory() -> None:
    cfg = compose_config(clean_env(**TEST_VARS, BATT_RESULTS="./results"))
    (volume,) = [v for v in cfg["services"]["producer"]["volumes"] if v["target"] != "/batts"]
    assert volume["type"] == "bind" and volume["source"] == str(REPO / "results")


def test_producer_mounts_the_batts_directory_read_only() -> None:
    for env, source in (
        (clean_env(**TEST_VARS), REPO / "batts"),
        (clean_env(**TEST_VARS, BATT_BATTS_DIR="/srv/b"), "/srv/b"),
    ):
        cfg = compose_config(env)
        (batts,) = [v for v in cfg["services"]["producer"]["volumes"] if v["target"] == "/batts"]
        assert batts["type"] == "bind" and batts["source"] == str(source) and batts["read_only"] is True
        for name, svc in cfg["services"].items():
            assert all(v["target"] != "/batts" for v in svc.get("volumes", [])) or name == "producer"


def test_signing_key_is_required_and_reaches_only_worker_and_producer(config: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    assert "BATT_SIGNING_KEY:-" not in text and "BATT_SIGNING_KEY-" not in text, "no default key"
    key = TEST_VARS["BATT_SIGNING_KEY"]
    for name in ("worker", "producer"):
        assert config["services"][name]["environment"]["BATT_SIGNING_KEY"] == key
    assert "BATT_SIGNING_KEY" not in config["services"]["flower"]["environment"], "Flower runs no batt"
    systemd_env = (SYSTEMD / "batt-queue.env.example").read_text()
    assert re.search(r"^BATT_SIGNING_KEY=\S{16,}$", systemd_env, re.M), "the systemd env file sets the key"
    rotated = compose_config(clean_env(**TEST_VARS, BATT_SIGNING_KEY_PREVIOUS="old-key-0123456789"))
    assert rotated["services"]["worker"]["environment"]["BATT_SIGNING_KEY_PREVIOUS"] == "old-key-0123456789"


def test_all_batt_services_share_the_settings(config: dict[str, Any]) -> None:
    envs = [set(config["services"][s]["environment"]) for s in ("worker", "flower", "producer")]
    common = set.intersection(*envs)
    assert {"BATT_BROKER_URL", "BATT_RESULT_BACKEND"} <= common


# --------------------------------------------------------------------------- .env.example


def test_env_example_documents_every_variable() -> None:
    documented = env_example_variables()
    used: set[str] = set()
    for path in (COMPOSE_FILE, *OVERRIDES.values()):
        used |= compose_variables(path)
    missing = sorted(used - set(documented))
    assert not missing, f".env.example lacks {missing}"
    # and every setting of batt_tasks/config.py, as compose passes them through
    config_doc = (REPO / "batt_tasks" / "config.py").read_text()
    settings_vars = set(re.findall(r"``(BATT_[A-Z0-9_]+)``", config_doc))
    assert settings_vars, "config.py's table of variables was not found"
    text = ENV_EXAMPLE.read_text()
    missing = sorted(v for v in settings_vars if v not in text)
    assert not missing, f".env.example lacks settings of batt_tasks/config.py: {missing}"
    compose_text = COMPOSE_FILE.read_text()
    not_passed = sorted(v for v in settings_vars if v not in compose_text)
    assert not not_passed, f"docker-compose.yml does not pass {not_passed} to the services"


def test_env_example_has_a_comment_for_every_variable_and_no_secrets() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#?\s*[A-Z][A-Z0-9_]*=", line):
            prev = lines[i - 1]
            assert prev.startswith("#"), f".env.example line {i + 1} ({line}) has no comment above it"
    values = env_example_variables()
    for var in REQUIRED_VARS:
        assert values[var] == "", f"{var} must be empty in .env.example (no default password)"


def test_env_example_works_as_an_env_file(tmp_path: Path) -> None:
    """With the required values filled in, .env.example as .env resolves to the documented defaults."""
    text = ENV_EXAMPLE.read_text()
    for var, value in TEST_VARS.items():
        text = text.replace(f"\n{var}=\n", f"\n{var}={value}\n")
    env_file = tmp_path / ".env"
    env_file.write_text(text)
    proc = run_compose(["--profile", "submit", "config", "-q"], clean_env(), env_file=env_file)
    assert proc.returncode == 0, proc.stderr
    bare = run_compose(["config", "-q"], clean_env(), env_file=ENV_EXAMPLE)
    assert bare.returncode != 0, "the example as it ships must not start (no passwords)"


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_clean_under_hadolint() -> None:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run(
        [exe, "--failure-threshold", "style", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            assert i > 0 and lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], (
                f"Dockerfile line {i + 1}: an ignored hadolint rule needs a comment line above saying why"
            )


def test_dockerfile_has_a_healthcheck_and_runs_as_non_root() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}|^FROM python:3\.11-slim", text, re.M)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*inspect ping", text, re.M | re.S)
    assert "[test]" not in text and "pytest" not in text, "no test dependencies in the image"


# --------------------------------------------------------------------------- systemd


def _unit(path: Path) -> dict[str, list[str]]:
    section = ""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_systemd_units_exist() -> None:
    assert {u.name for u in UNITS} == {"batt-worker.service", "batt-flower.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_units_verify(unit: Path, tmp_path: Path) -> None:
    """``systemd-analyze verify`` on the unit, its ExecStart pointed at this environment's celery."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    text = unit.read_text().replace("/opt/batt-queue/venv/bin/", str(Path(sys.executable).parent) + "/")
    copy = tmp_path / unit.name
    copy.write_text(text)
    proc = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), proc.stdout + proc.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_units_restart_and_read_an_environment_file(unit: Path) -> None:
    u = _unit(unit)
    assert u["Service.EnvironmentFile"] == ["/etc/batt-queue/batt-queue.env"]
    assert u["Service.Restart"] == ["always"]
    assert u["Service.KillSignal"] == ["SIGTERM"]
    assert u["Service.User"] == ["batt"]
    argv = shlex.split(u["Service.ExecStart"][0])
    assert argv[0].endswith("/celery") and argv[1:3] == ["-A", "batt_tasks"]


def test_worker_unit_shuts_down_warm() -> None:
    u = _unit(SYSTEMD / "batt-worker.service")
    # SIGTERM to the main process only: Celery's warm shutdown lets the pool finish running samples.
    assert u["Service.KillSignal"] == ["SIGTERM"] and u["Service.KillMode"] == ["mixed"]
    assert int(u["Service.TimeoutStopSec"][0]) >= 60
    assert "REMAP_SIGTERM" not in (SYSTEMD / "batt-worker.service").read_text().replace("# ", "")
    argv = shlex.split(u["Service.ExecStart"][0])
    assert "worker" in argv and any(a.startswith("--autoscale=") for a in argv)


def test_flower_unit_listens_on_loopback_by_default() -> None:
    u = _unit(SYSTEMD / "batt-flower.service")
    env = dict(v.split("=", 1) for v in u["Service.Environment"])
    assert env["BATT_FLOWER_ADDRESS"] == "127.0.0.1"
    assert "--address=${BATT_FLOWER_ADDRESS}" in u["Service.ExecStart"][0]
    assert "basic" not in u["Service.ExecStart"][0]


def test_docs_warn_about_unauthenticated_flower_endpoints() -> None:
    for path in (REPO / "deploy" / "README.md", COMPOSE_FILE, ENV_EXAMPLE):
        text = path.read_text()
        assert "/metrics" in text and "/healthcheck" in text, path
        assert re.search(r"without (any )?auth", text, re.I) or "WITHOUT" in text, path


def test_no_worker_command_turns_the_heartbeat_off(config: dict[str, Any]) -> None:
    """Task events are off by default and Flower turns them on, which a worker started with
    --without-heartbeat silently refuses: no shipped worker command, unit or documented command has it."""
    assert "--without-heartbeat" not in config["services"]["worker"]["command"]
    assert "--without-heartbeat" not in DOCKERFILE.read_text()
    for unit in UNITS:
        assert "--without-heartbeat" not in " ".join(_unit(unit)["Service.ExecStart"]), unit
    commands = [
        line
        for doc in (REPO / "README.md", REPO / "deploy" / "README.md")
        for line in doc.read_text().splitlines()
        if re.search(r"celery .*worker", line)
    ]
    assert commands, "no worker command found in the READMEs"
    assert not [line for line in commands if "--without-heartbeat" in line], commands


def test_readme_quick_start_logs_at_info_and_says_how_to_reach_flowers_api() -> None:
    """The non-Docker quick start: workers at -l INFO (start-up notices, one line per sample), and how
    Flower's API is reached (credentials, or FLOWER_UNAUTHENTICATED_API on loopback only)."""
    text = (REPO / "README.md").read_text()
    quick = text[text.index("A cluster on one machine, without Docker") : text.index("With Docker Compose")]
    workers = [line for line in quick.splitlines() if re.search(r"celery -A batt_tasks worker", line)]
    assert workers and all(re.search(r"(-l |--loglevel[= ])INFO", line) for line in workers), workers
    assert "FLOWER_BASIC_AUTH" in quick and "FLOWER_UNAUTHENTICATED_API" in quick
