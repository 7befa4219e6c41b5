"""The fleet's deployment files: infra/docker-compose.fleet.yml and config/fleet.yml, parsed and
checked against each other and config/docker.yml (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from arbitrage.config import load_config
from tests.e2e.test_deployment_files import DOCKER_CONFIG, REPO, leaf_paths

FLEET_COMPOSE = REPO / "infra" / "docker-compose.fleet.yml"
FLEET_CONFIG = REPO / "config" / "fleet.yml"
# Keys of config/fleet.yml allowed to differ from config/docker.yml; anything else is drift.
FLEET_OVERRIDES = {"storage.url", "fleet.enabled"}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(FLEET_COMPOSE.read_text(encoding="utf-8"))
    return data


def workers() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose()["services"].items() if name.startswith("worker-")}


def test_several_workers_each_with_its_own_name_files_and_port() -> None:
    found = workers()
    assert len(found) >= 2
    instances = [w["environment"]["ARB_INSTANCE"] for w in found.values()]
    assert len(set(instances)) == len(instances)
    for w in found.values():
        assert w["command"][:3] == ["run", "--config", "/app/config/fleet.yml"]
        assert w["environment"]["ARB_SYMBOLS"]
        assert w["environment"]["ARB_MODE"] == "${ARB_MODE:-mock}"
    for mount in ("logs", "data"):
        sources = [next(v for v in w["volumes"] if v.endswith(f":/app/{mount}")) for w in found.values()]
        assert len(set(sources)) == len(sources), f"workers share their {mount}"
    ports = [p for w in found.values() for p in w["ports"]]
    assert all(p.startswith("127.0.0.1:") for p in ports) and len(set(ports)) == len(ports)


def test_workers_wait_for_a_healthy_redis_and_postgres_which_are_not_published() -> None:
    services = compose()["services"]
    for name in ("redis", "postgres"):
        assert "healthcheck" in services[name] and "ports" not in services[name]
    for w in workers().values():
        assert w["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
        }
        assert w["build"]["args"]["EXTRAS"] == "postgres"  # psycopg in the image
        assert w["stop_signal"] == "SIGTERM" and w["user"] != "root"


def test_no_secret_values_in_the_fleet_compose_file() -> None:
    for w in workers().values():
        for key, value in w["environment"].items():
            if key.endswith(("_KEY", "_SECRET", "_TOKEN", "_CHAT_ID")) or key == "LIVE_TRADING":
                assert value is None, f"{key} has a value in the compose file"


def test_every_worker_config_loads_as_a_fleet_on_the_shared_ledger() -> None:
    services = compose()["services"]
    for w in workers().values():
        env = w["environment"]
        symbols = env["ARB_SYMBOLS"].split(",")
        config = load_config(FLEET_CONFIG, worker={"instance": env["ARB_INSTANCE"], "symbols": symbols})
        assert config.fleet.enabled and config.redis.enabled
        assert config.instance == env["ARB_INSTANCE"] and config.symbols == symbols
        assert config.storage.url is not None and "@postgres:5432/" in config.storage.url
        assert config.redis.url.startswith("redis://redis:")
    assert services["postgres"]["environment"]["POSTGRES_USER"] in (config.storage.url or "")


def test_fleet_config_is_docker_yml_plus_its_overrides() -> None:
    fleet = yaml.safe_load(Path(FLEET_CONFIG).read_text(encoding="utf-8"))
    docker = yaml.safe_load(Path(DOCKER_CONFIG).read_text(encoding="utf-8"))
    drift = leaf_paths(docker, fleet) ^ FLEET_OVERRIDES
    assert not drift, f"config/fleet.yml drifted from config/docker.yml at {sorted(drift)}: copy it over"
