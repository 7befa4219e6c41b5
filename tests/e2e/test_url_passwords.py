"""Passwords in storage.url and redis.url never reach stdout, stderr, logs/ or data/ (issue 10).

Each test runs the real command with URLs that carry distinctive passwords: `run` against the
real PostgreSQL (trust auth: the password is sent and ignored) and a private Redis that requires
its password, `config check`, `health`, and the error paths that print a message and exit.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.runner import BUSY_LOOP, REPO, Run, merge, run_bot, write_config
from tests.store.redis_server import PrivateRedisServer, free_port

PG_PASSWORD = "pgpw" + secrets.token_hex(12)
REDIS_PASSWORD = "rdpw" + secrets.token_hex(12)
PASSWORDS = (PG_PASSWORD, REDIS_PASSWORD)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedisServer]:
    workdir = tmp_path / "redis"  # its own log stays out of the bot's directories
    workdir.mkdir()
    server = PrivateRedisServer(workdir, password=REDIS_PASSWORD)
    server.start()
    yield server
    server.kill()


def with_password(url: str, password: str = PG_PASSWORD) -> str:
    assert url.startswith("postgresql://postgres@")
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1)


def everything_written(workdir: Path, stdout: str, stderr: str) -> dict[str, str]:
    texts = {"stdout": stdout, "stderr": stderr}
    for folder in ("logs", "data"):
        for path in sorted((workdir / folder).rglob("*")):
            if path.is_file():
                texts[str(path.relative_to(workdir))] = path.read_text(encoding="utf-8", errors="replace")
    return texts


def assert_no_password(texts: dict[str, str]) -> None:
    leaks = [(where, pw[:4]) for where, text in texts.items() for pw in PASSWORDS if pw in text]
    assert not leaks, f"URL passwords found in: {leaks}"


def command(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "LIVE_TRADING"))}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "arbitrage", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda url: with_password(url), id="userinfo"),
        pytest.param(
            lambda url: with_password(url).replace("postgresql://", "postgres://", 1), id="postgres-scheme"
        ),
        pytest.param(lambda url: f"{url}&password={PG_PASSWORD}", id="query-parameter"),
    ],
)
def test_a_run_never_shows_the_url_passwords(
    tmp_path: Path,
    pg_schema_url: Callable[[], str],
    private_redis: PrivateRedisServer,
    shape: Callable[[str], str],
) -> None:
    storage_url = shape(pg_schema_url())
    assert PG_PASSWORD in storage_url and REDIS_PASSWORD in private_redis.url
    overrides = merge(
        BUSY_LOOP,
        {
            "storage": {"url": storage_url},
            "redis": {"enabled": True, "url": private_redis.url, "key_prefix": "arbpw"},
            "logging": {"level": "DEBUG"},
        },
    )
    workdir = tmp_path / "bot"
    run = run_bot(workdir, "--mock", "--loops", "20", "--interval", "0", overrides=overrides)
    assert run.code == 0, run.stderr
    # It used both passwords: the ledger is in PostgreSQL and the heartbeat reached the private Redis.
    assert not (workdir / "data" / "ledger.sqlite3").exists()
    client = redis.Redis.from_url(private_redis.url)
    try:
        assert client.keys("arbpw:*")
    finally:
        client.close()
    texts = everything_written(workdir, run.stdout, run.stderr)
    assert "logs/live_loop.log" in texts
    assert_no_password(texts)
    # The start line still says where the ledger is.
    start = next(line for line in texts["logs/live_loop.log"].splitlines() if "starting arb-1" in line)
    assert "127.0.0.1:5432/test" in start and "***" in start


def test_a_ledger_that_cannot_be_reached_fails_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://arb:{PG_PASSWORD}@127.0.0.1:{free_port()}/test?connect_timeout=2"
    run = run_bot(tmp_path, "--mock", "--once", "--debug", overrides={"storage": {"url": url}})
    assert run.code == 1, (run.code, run.stderr)
    assert "127.0.0.1" in run.stderr  # the message says where it tried
    assert_no_password(everything_written(tmp_path, run.stdout, run.stderr))


def test_a_config_error_quoting_the_url_masks_its_password(tmp_path: Path) -> None:
    url = f"mysql://arb:{PG_PASSWORD}@db/arb"
    run: Run = run_bot(tmp_path, "--mock", "--once", overrides={"storage": {"url": url}})
    assert run.code == 2
    assert "storage.url: expected a URL starting with sqlite:/// or postgresql://" in run.stderr
    assert "found 'mysql://arb:***@db/arb'" in run.stderr
    assert_no_password({"stdout": run.stdout, "stderr": run.stderr})


def test_config_check_masks_url_passwords(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "storage": {"url": f"postgresql://arb:{PG_PASSWORD}@db.internal:5432/arb?sslmode=require"},
            "redis": {"url": f"redis://default:{REDIS_PASSWORD}@cache.internal:6379/0"},
        },
    )
    proc = command(tmp_path, "config", "check", "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "url: postgresql://arb:***@db.internal:5432/arb?sslmode=require" in proc.stdout
    assert "url: redis://default:***@cache.internal:6379/0" in proc.stdout
    assert_no_password({"stdout": proc.stdout, "stderr": proc.stderr})


@pytest.mark.parametrize("redis_password", [REDIS_PASSWORD, "wrong" + REDIS_PASSWORD], ids=["right", "wrong"])
def test_health_masks_url_passwords(
    tmp_path: Path, pg_schema_url: Callable[[], str], private_redis: PrivateRedisServer, redis_password: str
) -> None:
    redis_url = f"redis://:{redis_password}@127.0.0.1:{private_redis.port}/0"
    path = write_config(
        tmp_path,
        {"storage": {"url": with_password(pg_schema_url())}, "redis": {"enabled": True, "url": redis_url}},
    )
    proc = command(tmp_path, "health", "--config", str(path))
    assert "ledger" in proc.stdout and "redis" in proc.stdout, proc.stdout
    if redis_password == REDIS_PASSWORD:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    else:
        assert proc.returncode == 1 and "redis" in proc.stdout.splitlines()[-1]
    leaks = [pw[:4] for pw in (PG_PASSWORD, redis_password) if pw in proc.stdout + proc.stderr]
    assert not leaks, proc.stdout
