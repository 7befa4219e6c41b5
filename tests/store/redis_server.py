"""A private redis-server subprocess on a free loopback port, which tests may kill and restart."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

INSTALL_HINT = "redis-server binary not found: apt-get install redis-server"
START_TIMEOUT_S = 30.0  # generous: a loaded machine starts processes slowly


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedisServer:
    """One throwaway redis-server (no persistence) bound to 127.0.0.1 on a fixed free port.

    `kill()` SIGKILLs it, as a crash would; `start()` again brings it back on the same port, empty.
    With `password`, clients must AUTH (the URL carries it: redis://:password@...).
    """

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(INSTALL_HINT)
        self._binary = binary
        self._workdir = workdir
        self.port = free_port()
        self.password = password
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        log = (self._workdir / f"redis-{self.port}.log").open("ab")
        self._process = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
                "--daemonize",
                "no",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_until_ready()

    def kill(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=START_TIMEOUT_S)
        self._process = None

    def _wait_until_ready(self) -> None:
        probe = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                if self._process is not None and self._process.poll() is not None:
                    log = (self._workdir / f"redis-{self.port}.log").read_text(errors="replace")
                    pytest.fail(f"private redis-server on port {self.port} exited at start:\n{log[-2000:]}")
                try:
                    if probe.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    pytest.fail(
                        f"private redis-server on port {self.port} not ready after {START_TIMEOUT_S} s"
                    )
                time.sleep(0.05)
        finally:
            probe.close()
