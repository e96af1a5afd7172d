"""The command line, end to end, as a user runs it (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playground.settings import Settings
from tests.support import QUESTION, ROOT


def cli(settings: Settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PLAYGROUND_DATA_DIR": str(settings.data_dir),
        "PLAYGROUND_MODELS_DIR": str(settings.models_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "playground", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def test_models_json_lists_every_model_with_a_unique_id(settings: Settings) -> None:
    result = cli(settings, "models", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    embedded = next(r for r in rows if r["id"] == "smollm2-135m-instruct@onnx")
    assert embedded["available"] is True and embedded["capabilities"] == ["chat"]
    vision = next(r for r in rows if r["id"] == "phi-3.5-vision@onnx")
    assert vision["available"] is False and "download" in vision["reason"]
    assert {"id", "provider", "capabilities", "available", "reason"} <= set(vision)


@pytest.mark.parametrize("engine", ["onnx", "transformers"])
def test_chat_json_answers_with_metrics(settings: Settings, engine: str) -> None:
    result = cli(
        settings,
        "chat",
        "-m",
        "smollm2-135m-instruct",
        "-p",
        engine,
        "--temperature",
        "0",
        "--max-new-tokens",
        "40",
        "--json",
        QUESTION,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert "Paris" in out["text"]
    assert out["model"] == f"smollm2-135m-instruct@{engine}"
    metrics = out["metrics"]
    assert metrics["finish_reason"] == "stop"
    assert metrics["ttft_s"] > 0 and metrics["tokens_per_s"] > 0 and metrics["completion_tokens"] > 3
    assert set(metrics) >= {"ttft_s", "tokens_per_s", "prompt_tokens", "completion_tokens", "total_s"}


def test_chat_streams_plain_text(settings: Settings) -> None:
    result = cli(settings, "chat", "--temperature", "0", "--max-new-tokens", "40", QUESTION)
    assert result.returncode == 0
    assert "Paris" in result.stdout and not result.stdout.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chat", "-m", "no-such-model", "hi"], "Unknown model 'no-such-model'"),
        (["chat", "--temperature", "7", "hi"], "temperature"),
        (["chat", "-m", "phi-3.5-mini@onnx", "hi"], "download 2.4 GB"),
        (["convert", "/nonexistent/folder", "/tmp/out"], "Nothing to convert"),
        (["local", "--delete", "nothing-here"], "No local model named"),
        (["download", "phi-3.5-mini@onnx"], "Cannot reach the Hugging Face Hub"),
        (["download", "smollm2-135m-instruct@onnx"], "nothing to download"),
    ],
)
def test_errors_are_one_clear_line(settings: Settings, args: list[str], message: str) -> None:
    result = cli(settings, *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_ctrl_c_stops_and_keeps_the_partial_answer(settings: Settings) -> None:
    env = {
        **os.environ,
        "PLAYGROUND_DATA_DIR": str(settings.data_dir),
        "PLAYGROUND_MODELS_DIR": str(settings.models_dir),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "playground",
            "chat",
            "--max-new-tokens",
            "3000",
            "--seed",
            "3",
            "Write a very long story about a lighthouse keeper.",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    first = proc.stdout.read(40)  # the answer has started streaming
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    rest, err = proc.communicate(timeout=30)
    assert time.monotonic() - start < 15
    assert proc.returncode == 130
    assert len(first) == 40 and "[stopped]" in err and "Traceback" not in err
    assert len(first + rest) < 3000 * 2


def test_local_lists_the_converted_embedded_model(settings: Settings, embedded_onnx_folder: Path) -> None:
    result = cli(settings, "local")
    assert result.returncode == 0
    line = next(line for line in result.stdout.splitlines() if line.startswith(embedded_onnx_folder.name))
    assert "embedded" in line and "MB" in line


def test_convert_reuses_a_finished_conversion(settings: Settings, embedded_onnx_folder: Path) -> None:
    result = cli(settings, "convert", str(embedded_onnx_folder.parent / "x"), str(embedded_onnx_folder))
    assert result.returncode == 0 and "Already converted" in result.stderr
