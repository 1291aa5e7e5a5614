"""The compose file's ``rabbitmq`` profile (issue 16), resolved by the real Compose v2 binary (no Docker engine)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from deploy_support import clean_env, compose_config, unescape_dollars

TEST_VARS = {
    "BATT_REDIS_PASSWORD": "s3cr3t-test-pw",
    "BATT_FLOWER_BASIC_AUTH": "admin:flower-test-pw",
    "BATT_SIGNING_KEY": "signing-test-key",
    "BATT_RABBITMQ_PASSWORD": "rabbit-test-pw",
    "BATT_BROKER_URL": "amqp://batt:rabbit-test-pw@rabbitmq:5672/batt",
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return compose_config(clean_env(**TEST_VARS), profiles=("rabbitmq", "submit"))


def test_rabbitmq_is_only_in_its_profile() -> None:
    plain = compose_config(
        clean_env(BATT_REDIS_PASSWORD="x", BATT_FLOWER_BASIC_AUTH="a:b", BATT_SIGNING_KEY="k"), profiles=()
    )
    assert "rabbitmq" not in plain["services"]


def test_rabbitmq_service_has_no_guest_a_durable_volume_and_a_loopback_ui(config: dict[str, Any]) -> None:
    rabbit = config["services"]["rabbitmq"]
    env = rabbit["environment"]
    assert env["RABBITMQ_DEFAULT_USER"] == "batt" and env["RABBITMQ_DEFAULT_PASS"] == "rabbit-test-pw"
    assert env["RABBITMQ_DEFAULT_VHOST"] == "batt"
    assert "consumer_timeout 3600000" in env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    assert any(v["source"] == "rabbitmq-data" and v["target"] == "/var/lib/rabbitmq" for v in rabbit["volumes"])
    assert [(p["host_ip"], p["target"]) for p in rabbit["ports"]] == [("127.0.0.1", 15672)]  # no AMQP port
    assert rabbit["hostname"] == "rabbitmq" and "healthcheck" in rabbit


def test_rabbitmq_refuses_to_start_without_a_password(config: dict[str, Any]) -> None:
    """The service's own command: with an empty password it exits 1 before RabbitMQ starts (run by sh here)."""
    script = unescape_dollars(config["services"]["rabbitmq"]["command"][2]).replace(
        "exec docker-entrypoint.sh rabbitmq-server", "echo STARTED"
    )
    empty = subprocess.run(["sh", "-c", script], env={"RABBITMQ_DEFAULT_PASS": ""}, capture_output=True, text=True)
    assert empty.returncode == 1 and "BATT_RABBITMQ_PASSWORD" in empty.stderr
    ok = subprocess.run(["sh", "-c", script], env={"RABBITMQ_DEFAULT_PASS": "pw"}, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip() == "STARTED"


def test_batt_services_use_rabbitmq_and_wait_for_it(config: dict[str, Any]) -> None:
    for name in ("worker", "flower", "producer"):
        service = config["services"][name]
        env = service["environment"]
        assert env["BATT_BROKER_URL"] == TEST_VARS["BATT_BROKER_URL"]
        assert env["BATT_RESULT_BACKEND"].startswith("redis://")  # Redis stays the result backend
        assert env["BATT_BROKER_CONSUMER_TIMEOUT"] == "3600"
        assert env["BATT_RABBITMQ_MANAGEMENT_URL"] == "http://rabbitmq:15672"
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
