"""`python app.py`: where it listens, /healthz, the privacy notice, and uploads refused before they are read."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from playground.public.privacy import privacy_notice
from tests.support import MODELS_DIR, ROOT, make_settings

START_LIMIT_S = 180.0
UPLOAD_MB = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def launched(
    tmp_path_factory: pytest.TempPathFactory, embedded_onnx_folder: Path
) -> Iterator[tuple[str, str, int]]:
    """`python app.py --port P` in public mode: its listening line, its URL and its process id."""
    port = free_port()
    data = tmp_path_factory.mktemp("launch")
    env = {
        **os.environ,
        "PLAYGROUND_DATA_DIR": str(data),
        "PLAYGROUND_MODELS_DIR": str(MODELS_DIR),
        "PLAYGROUND_PUBLIC": "1",
        "PLAYGROUND_UPLOAD_MB": str(UPLOAD_MB),
        "PLAYGROUND_IMPORT_MB": str(UPLOAD_MB),
        "PLAYGROUND_IMAGE_MB": str(UPLOAD_MB),
        "PLAYGROUND_HISTORY_MAX_AGE_DAYS": "30",
        "GRADIO_SERVER_PORT": "1",  # --port wins over the variable
        "GRADIO_TEMP_DIR": str(data / "gradio"),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    command = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=data, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for each in process.stdout or []:
            lines.put(each)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + START_LIMIT_S
    try:
        while True:
            assert time.monotonic() < deadline, "no listening line:\n" + "".join(seen[-30:])
            assert process.poll() is None, "app.py exited:\n" + "".join(seen[-30:])
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if "listening on" in line:
                break
        yield line.strip(), f"http://127.0.0.1:{port}/", process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_app_py_prints_where_it_listens(launched: tuple[str, str, int]) -> None:
    line, url, _ = launched
    assert line == f"SLM Playground listening on {url.rstrip('/')}"


def test_health_endpoint(launched: tuple[str, str, int]) -> None:
    _, url, _ = launched
    response = httpx.get(f"{url}healthz", timeout=10)
    assert response.status_code == 200
    found = response.json()
    assert found["status"] == "ok" and found["public"] is True
    assert found["queue"] == {"waiting": 0, "running": 0}


def test_the_page_has_the_privacy_notice(launched: tuple[str, str, int], tmp_path: Path) -> None:
    _, url, _ = launched
    config = httpx.get(f"{url}config", timeout=30).text
    assert "What this playground stores" in config
    assert "for 30 days" in config, "the retention comes from PLAYGROUND_HISTORY_MAX_AGE_DAYS"
    assert "What is never stored" in config and "API keys you type" in config


def test_privacy_notice_follows_the_settings(tmp_path: Path) -> None:
    private = privacy_notice(make_settings(tmp_path))
    assert "until you delete them" in private and "public playground" not in private
    public = privacy_notice(
        make_settings(tmp_path, PLAYGROUND_PUBLIC="1", PLAYGROUND_HISTORY_MAX_AGE_DAYS="7")
    )
    assert "for 7 days" in public and "deleted after about 60 minutes" in public
    assert "public playground" in public


def _rss_mb(pid: int) -> float:
    total = 0.0
    for each in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(found.group(1)) / 1024 if found else 0
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_an_oversize_upload_is_refused_before_it_is_read(
    launched: tuple[str, str, int], tmp_path: Path
) -> None:
    _, url, pid = launched
    small = httpx.post(f"{url}gradio_api/upload", files={"files": ("a.txt", b"x" * 1000)}, timeout=30)
    assert small.status_code == 200
    before = _rss_mb(pid)
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        for _ in range(256):
            out.write(b"\0" * (1024 * 1024))  # 256 MB
    with big.open("rb") as handle:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.bin", handle)}, timeout=120)
    assert response.status_code == 413
    assert "File size exceeded" in response.text or "maximum allowed size" in response.text
    after = _rss_mb(pid)
    assert after - before < 64, f"the server grew from {before:.0f} to {after:.0f} MB"
