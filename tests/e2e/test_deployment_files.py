"""The deployment files (docs/ARCHITECTURE.md, Deployment): Dockerfile, .dockerignore,
infra/docker-compose.yml, config/docker.yml.

No Docker engine is needed: the files are parsed and checked against each other and the config, and the
image's own command and HEALTHCHECK run on this machine against the real Redis (db 11).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import yaml

from arbitrage.config import AppConfig, load_config
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "infra" / "docker-compose.yml"
DOCKER_CONFIG = REPO / "config" / "docker.yml"
LIVE_CONFIG = REPO / "config" / "live.yml"

REDIS_URL = "redis://127.0.0.1:6379/11"  # db 11 belongs to this file
REDIS_HINT = 'start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
# Keys of config/docker.yml allowed to differ from config/live.yml; anything else is drift.
DOCKER_OVERRIDES = {
    "redis.enabled",
    "redis.url",
    "health_server.enabled",
    "health_server.host",
    "safety.halt_file",
    "live_guards.confirm_file",
}
DEFAULT_RE = re.compile(r"^\$\{(\w+):?-([^}]*)\}$")  # compose's ${VAR:-default}
T = TypeVar("T")


# -- parsing -------------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each Dockerfile instruction, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


def only(keyword: str) -> str:
    found = [args for kw, args in instructions() if kw == keyword]
    assert len(found) == 1, f"expected one {keyword} in the Dockerfile, found {len(found)}"
    return found[0]


def exec_form(args: str) -> list[str]:
    parsed = json.loads(args)  # the exec (JSON) form: no shell in between, signals reach the bot
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), args
    return parsed


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for kw, args in instructions():
        if kw == "ENV":
            for word in shlex.split(args):
                key, sep, value = word.partition("=")
                assert sep, f"ENV {word!r}: use the KEY=value form"
                env[key] = value
    return env


def image_uid() -> int:
    """The uid given to useradd for the image's USER."""
    useradds = [
        shlex.split(cmd)
        for kw, a in instructions()
        if kw == "RUN"
        for cmd in a.split("&&")
        if "useradd" in cmd
    ]
    assert len(useradds) == 1, "the USER must be created with one useradd"
    words = useradds[0]
    assert words[-1] == only("USER") and "--uid" in words, f"useradd --uid N {only('USER')}: {words}"
    return int(words[words.index("--uid") + 1])


def healthcheck_command() -> list[str]:
    words = only("HEALTHCHECK").split(" CMD ", 1)
    assert len(words) == 2, "HEALTHCHECK [OPTIONS] CMD [...]"
    return exec_form(words[1])


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"no service {name!r} in {COMPOSE}"
    svc: dict[str, Any] = services[name]
    return svc


def environment(svc: dict[str, Any]) -> dict[str, str | None]:
    env = svc.get("environment") or {}
    if isinstance(env, list):  # the list form: "KEY=value" or a bare "KEY" (passed through)
        return {k: (v if sep else None) for k, sep, v in (e.partition("=") for e in env)}
    return {k: None if v is None else str(v) for k, v in env.items()}


def compose_default(value: str | None) -> tuple[str, str]:
    """(variable, default) of compose's ${VAR:-default}."""
    match = DEFAULT_RE.match(value or "")
    assert match, f"{value!r} is not of the form ${{VAR:-default}}"
    return match.group(1), match.group(2)


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a compose duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def docker_config() -> AppConfig:
    return load_config(DOCKER_CONFIG)


def leaf_paths(a: Any, b: Any, prefix: str = "") -> set[str]:
    """Dotted paths at which two parsed YAML documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for key in a.keys() | b.keys():
            out |= leaf_paths(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return set() if a == b else {prefix.rstrip(".")}


# -- Dockerfile ------------------------------------------------------------------------------------


def test_base_image_is_python_311_slim() -> None:
    base = only("FROM")
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base


def test_a_non_root_user_owns_logs_and_data_and_runs_the_entrypoint() -> None:
    ins = instructions()
    keywords = [kw for kw, _ in ins]
    user = only("USER")
    assert user.split(":")[0] not in ("root", "0"), f"USER {user} is root"
    assert image_uid() >= 1000, "a fixed, regular (non-system) uid"
    at = keywords.index("USER")
    assert at < keywords.index("ENTRYPOINT") and at < keywords.index("CMD"), "USER before ENTRYPOINT and CMD"
    assert at > max(i for i, kw in enumerate(keywords) if kw == "RUN"), "every RUN (as root) before USER"
    assert only("WORKDIR") == "/app"
    chowns = [a for kw, a in ins if kw == "RUN" and "chown" in a]
    assert any(f"chown {user}:{user} /app/logs /app/data" in a for a in chowns), chowns


def test_installs_the_package_without_dev_extras() -> None:
    installs = [a for kw, a in instructions() if kw == "RUN" and "pip install" in a]
    assert len(installs) == 1, installs
    assert [a for kw, a in instructions() if kw == "ARG"] == ['EXTRAS=""'], "no extras unless asked for"
    assert "dev" not in installs[0] and " -e " not in installs[0], installs[0]
    copied = [a for kw, a in instructions() if kw == "COPY"]
    assert "pyproject.toml README.md /tmp/src/" in copied and "arbitrage /tmp/src/arbitrage" in copied, copied
    assert "/tmp/src" in installs[0]


def test_entrypoint_is_arb_and_the_default_mode_is_never_live() -> None:
    assert exec_form(only("ENTRYPOINT")) == ["arb"]
    cmd = exec_form(only("CMD"))
    assert cmd[:3] == ["run", "--config", "/app/config/docker.yml"], cmd
    # An explicit --mode would override ARB_MODE and leave compose's setting without effect.
    assert "--mode" not in cmd and "--mock" not in cmd, cmd
    assert image_env()["ARB_MODE"] == "mock"
    assert docker_config().mode.current == "mock"
    assert only("STOPSIGNAL") == "SIGTERM"


def test_healthcheck_gets_the_health_endpoint_with_python() -> None:
    options = only("HEALTHCHECK").split(" CMD ", 1)[0]
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in options, f"HEALTHCHECK without {option}"
    cmd = healthcheck_command()
    assert cmd[:2] == ["python", "-c"] and "urllib.request.urlopen" in cmd[2], cmd
    port = docker_config().health_server.port
    assert f"'http://127.0.0.1:{port}/health'" in cmd[2], f"the healthcheck must probe port {port}"
    assert only("EXPOSE") == str(port)


def test_the_build_context_holds_only_what_the_dockerfile_copies() -> None:
    patterns = [
        p.strip()
        for p in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if p.strip() and not p.startswith("#")
    ]
    assert patterns[0] == "*", "an allowlist: exclude everything, then re-include"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert included == {"pyproject.toml", "README.md", "arbitrage", "config"}, included
    for kw, args in instructions():
        if kw == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert source.split("/")[0] in included, f"COPY {source}: excluded by .dockerignore"
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"


# -- docker-compose ----------------------------------------------------------------------------------


def test_redis_has_a_healthcheck_and_is_not_published() -> None:
    redis_svc = service("redis")
    assert redis_svc["image"] == "redis:7-alpine"
    assert redis_svc["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "ports" not in redis_svc, "Redis stays on the compose network"
    assert docker_config().redis.url.startswith("redis://redis:"), "docker.yml must name the compose service"


def test_arb_is_built_here_and_waits_for_a_healthy_redis() -> None:
    arb = service("arb")
    build = arb["build"]
    assert (COMPOSE.parent / build["context"]).resolve() == REPO
    assert (REPO / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    assert arb["depends_on"]["redis"]["condition"] == "service_healthy"
    assert arb["restart"] == "unless-stopped"


def test_logs_and_data_are_volumes_of_the_checkout() -> None:
    mounts = {}
    for volume in service("arb")["volumes"]:
        host, container = volume.split(":")[:2]
        mounts[container] = (COMPOSE.parent / host).resolve()
    assert mounts["/app/logs"] == REPO / "logs"
    assert mounts["/app/data"] == REPO / "data"


def test_mode_comes_from_the_environment_and_defaults_to_mock() -> None:
    variable, default = compose_default(environment(service("arb"))["ARB_MODE"])
    assert variable == "ARB_MODE"
    assert default == "mock", f"never live by default (found {default!r})"


def test_no_secret_values_in_the_compose_file() -> None:
    config = docker_config()
    secrets = {name for v in config.venues.values() for name in (v.api_key_env, v.api_secret_env) if name}
    secrets |= {config.alerts.telegram_token_env, config.alerts.telegram_chat_id_env}
    secrets.add(config.health_server.control_token_env)  # the bearer token of POST /halt, /stop
    assert len(secrets) == 7, secrets
    env = environment(service("arb"))
    missing = sorted(s for s in secrets if s not in env)
    assert not missing, f"pass these through from the host: {missing}"
    valued = sorted(k for k, v in env.items() if v is not None and k != "ARB_MODE")
    assert not valued, f"only names, never values, in the compose file: {valued}"


def test_ports_are_published_on_loopback_only() -> None:
    ports = service("arb")["ports"]
    assert ports, "the health endpoint is published"
    port = docker_config().health_server.port
    for entry in ports:
        assert isinstance(entry, str) and entry.startswith("127.0.0.1:"), f"{entry!r} is open to other hosts"
        assert entry.rsplit(":", 1)[1] == str(port), f"{entry!r} must reach health_server.port {port}"


def test_stop_gives_the_graceful_shutdown_time_and_the_user_is_not_root() -> None:
    arb = service("arb")
    assert arb["stop_signal"] == "SIGTERM"
    assert seconds(arb["stop_grace_period"]) > docker_config().shutdown.timeout_s
    parts = re.fullmatch(r"(\$\{[^}]*\}):(\$\{[^}]*\})", arb["user"])
    assert parts, f"user {arb['user']!r}: expected ${{UID_VAR:-uid}}:${{GID_VAR:-gid}}"
    (_, uid), (_, gid) = compose_default(parts.group(1)), compose_default(parts.group(2))
    assert uid not in ("0", "root") and gid not in ("0", "root"), f"user {arb['user']} defaults to root"
    # The same uid as the image's, so that `chown 10001:10001 logs data` (infra/README.md) fits both.
    assert int(uid) == image_uid()


# -- config/docker.yml -----------------------------------------------------------------------------


def test_docker_config_loads_with_redis_and_the_health_server() -> None:
    config = docker_config()
    assert config.redis.enabled
    assert config.health_server.enabled and config.health_server.host == "0.0.0.0"
    # Inside /app only logs/ and data/ are writable and mounted: the operator's files live in data/.
    assert config.safety.halt_file.startswith("data/")
    assert config.live_guards.confirm_file.startswith("data/")


def test_docker_config_is_live_yml_plus_its_overrides() -> None:
    docker = yaml.safe_load(DOCKER_CONFIG.read_text(encoding="utf-8"))
    live = yaml.safe_load(LIVE_CONFIG.read_text(encoding="utf-8"))
    drift = leaf_paths(live, docker) ^ DOCKER_OVERRIDES
    assert not drift, f"config/docker.yml drifted from config/live.yml at {sorted(drift)}: copy it over"


# -- the image's command and healthcheck, run here --------------------------------------------------


def wait_for(what: str, probe: Callable[[], T | None], proc: subprocess.Popen[bytes], logs: Path) -> T:
    """Poll until `probe` returns something; fail at once if the bot exits, else after a generous minute."""
    return wait_until(probe, 60.0, what, every_s=0.2, proc=proc, details=lambda: f"output:\n{tail(logs)}")


def tail(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-3000:] if path.exists() else "(none)"


def healthcheck_probe(port: int) -> list[str]:
    """The image's HEALTHCHECK command with this interpreter and the given port in place of 8080."""
    cmd = healthcheck_command()
    assert "127.0.0.1:8080" in cmd[2]
    return [sys.executable, *cmd[1:-1], cmd[-1].replace("127.0.0.1:8080", f"127.0.0.1:{port}")]


@pytest.fixture
def real_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as err:
        pytest.fail(f"Redis at {REDIS_URL} unreachable ({err}); {REDIS_HINT}")
    yield client
    client.close()


def test_healthcheck_fails_when_nothing_answers() -> None:
    with socket.socket() as sock:  # a port that was just free and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = subprocess.run(healthcheck_probe(port), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, "docker reads exit 1 as unhealthy"


def test_the_image_command_runs_healthy_and_stops_on_sigterm(tmp_path: Path, real_redis: redis.Redis) -> None:
    # tmp_path plays /app: the image's paths map into it, and docker.yml gets this machine's Redis
    # and a free loopback port instead of the compose network.
    prefix = f"arb-deploy-test-{uuid.uuid4().hex[:8]}"
    raw = yaml.safe_load(DOCKER_CONFIG.read_text(encoding="utf-8"))
    raw["redis"].update(url=REDIS_URL, key_prefix=prefix)
    raw["health_server"].update(host="127.0.0.1", port=0)
    # Off here: the SysMonitor's first sample counts the start-up (imports, wiring) as CPU of the loop,
    # which alone can read >= 98 % and end a short run with CRITICAL; that is the SysMonitor's to test.
    raw["sys_monitor"]["enabled"] = False
    # The image's ENV ARB_MODE=mock must win over the config's mode (paper here would need the network).
    raw["mode"]["current"] = "paper"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "docker.yml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")

    workdir = only("WORKDIR")
    args = [
        str(tmp_path / a.removeprefix(workdir + "/")) if a.startswith(workdir + "/") else a
        for a in exec_form(only("CMD"))
    ]
    arb = Path(sys.executable).with_name("arb")
    entry = [str(arb)] if arb.exists() else [sys.executable, "-m", "arbitrage"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "LIVE_TRADING"))}
    env.update(image_env())
    out = tmp_path / "console.txt"
    health_log = tmp_path / "logs" / "health.log"
    with out.open("w", encoding="utf-8") as console:
        proc = subprocess.Popen(
            [*entry, *args], cwd=tmp_path, env=env, stdout=console, stderr=subprocess.STDOUT
        )
    try:

        def bound_port() -> int | None:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", tail(health_log))
            return int(found.group(1)) if found else None

        port = wait_for("health endpoint listening", bound_port, proc, out)

        def healthy() -> bool | None:
            done = subprocess.run(healthcheck_probe(port), capture_output=True, timeout=30, check=False)
            return True if done.returncode == 0 else None

        wait_for("HEALTHCHECK command exiting 0", healthy, proc, out)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/detailed", timeout=10) as reply:
            detailed = json.loads(reply.read())
        assert detailed["mode"] == "mock", "the image's ENV ARB_MODE decides the mode"
        heartbeat = f"{prefix}:{raw['instance']}:heartbeat"
        wait_for(f"Redis heartbeat {heartbeat}", lambda: real_redis.get(heartbeat), proc, out)

        proc.send_signal(signal.SIGTERM)
        grace = seconds(service("arb")["stop_grace_period"])
        code = proc.wait(timeout=grace)
        assert code == 0, f"SIGTERM must stop gracefully with exit 0, got {code}:\n{tail(out)}"
        assert (tmp_path / "data" / "ledger.sqlite3").exists() and (tmp_path / "data" / "state.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for key in real_redis.scan_iter(f"{prefix}:*"):
            real_redis.delete(key)
