"""Fixtures of the cloud tests: a real `transformers serve` with the embedded model, and the fake server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from playground.catalog import load_catalog
from playground.providers.cloud import CloudProvider, RetryPolicy, build_cloud_providers
from playground.settings import Settings
from tests.cloud.fake_server import FakeServer
from tests.support import make_settings

START_LIMIT_S = 120.0


@dataclass(frozen=True)
class Served:
    """A running `transformers serve`: its OpenAI base URL and the model id it serves."""

    base_url: str
    model: str
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def served(embedded_hf_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`transformers serve <embedded model> --port <free port>` for the whole session."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    binary = Path(sys.executable).with_name("transformers")
    # One thread: on a busy 2-core machine, torch's spinning worker threads make each answer seconds slower.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [str(binary), "serve", str(embedded_hf_folder), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", process, log)
        yield Served(f"http://127.0.0.1:{port}/v1", str(embedded_hf_folder), log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"transformers serve exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(
        f"transformers serve was not healthy within {START_LIMIT_S:.0f} s:\n{log.read_text()[-2000:]}"
    )


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture
def cloud_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings from exactly these variables (nothing from the real environment)."""

    def build(**env: str) -> Settings:
        return make_settings(tmp_path / "data", **env)

    return build


@pytest.fixture
def provider(cloud_settings: Callable[..., Settings]) -> Callable[..., CloudProvider]:
    """The cloud provider called `name` under these variables; fast retries for the tests."""

    def build(name: str, *, retry: RetryPolicy | None = None, **env: str) -> CloudProvider:
        settings = cloud_settings(**env)
        for found in build_cloud_providers(settings, load_catalog()):
            if found.name == name:
                if retry is not None:
                    return CloudProvider(
                        found.endpoint, settings=settings, catalog=load_catalog(), retry=retry
                    )
                return found
        raise AssertionError(f"no provider {name!r} under {sorted(env)}")

    return build
