"""Every bad input from the command line or the environment is one `error:` line, never a traceback.

Each case runs the real CLI in a subprocess, as a user would; all but one fail before a model loads.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from playground.cli import _unexpected
from playground.errors import ConfigError
from playground.settings import Settings
from tests.support import MODELS_DIR, ROOT


def run_cli(data_dir: Path, *args: str | bytes, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("PLAYGROUND_", "GRADIO_SERVER", "OLLAMA"))
    }
    return subprocess.run(
        [sys.executable, "-m", "playground", *args],
        capture_output=True,
        text=True,
        errors="replace",
        env={**clean, "PLAYGROUND_DATA_DIR": str(data_dir), "PLAYGROUND_MODELS_DIR": str(MODELS_DIR), **env},
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    err = result.stderr
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in expected:
        assert part in lines[0], lines[0]
    return lines[0]


def broken_model_folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / f"model-with-broken-{name.split('.')[0]}"
    folder.mkdir()
    (folder / name).write_text('{"model": {"context_length": ', encoding="utf-8")
    return folder


@pytest.mark.parametrize("name", ["config.json", "genai_config.json"])
def test_a_broken_config_behind_a_model_path(tmp_path: Path, name: str) -> None:
    folder = broken_model_folder(tmp_path, name)
    result = run_cli(tmp_path / "data", "chat", "-m", str(folder), "hi")
    one_error_line(result, str(folder / name), "cannot be read as JSON")


def test_a_model_id_of_5000_characters(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "chat", "-m", "x" * 5000, "hi")
    line = one_error_line(result, "at most 4096 characters, got 5000")
    assert len(line) < 400, "the id is not echoed back whole"


def test_a_model_name_longer_than_the_file_system_takes(tmp_path: Path) -> None:
    """Not "[Errno 36] File name too long": the id is not tried as a path when nothing is there."""
    result = run_cli(tmp_path, "chat", "-m", "y" * 300, "hi")
    line = one_error_line(result, "Unknown model 'yyy", "python -m playground models")
    assert len(line) < 400 and "Errno" not in line


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("~nosuchuser/x", "give the folder's full path"),
        ("a/" * 700, "a model id or a folder's path is at most 1,024"),
        ("phi-3\nmini", "no control characters"),
    ],
)
def test_a_model_reference_of_the_wrong_shape_is_one_clear_line(
    tmp_path: Path, ref: str, expected: str
) -> None:
    line = one_error_line(run_cli(tmp_path, "chat", "-m", ref, "hi"), expected)
    assert "unexpected" not in line and "Errno" not in line


def test_a_nan_temperature_says_it_is_not_a_number(tmp_path: Path) -> None:
    line = one_error_line(
        run_cli(tmp_path, "chat", "--temperature", "nan", "hi"),
        "temperature",
        "finite number",
        "from 0.0 to 2.0",
    )
    assert "less than or equal" not in line


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GRADIO_SERVER_PORT": "99999"}, "GRADIO_SERVER_PORT must be a port number (1-65535), got 99999"),
        ({"GRADIO_SERVER_PORT": "-1"}, "GRADIO_SERVER_PORT must be a port number (1-65535), got -1"),
        ({"GRADIO_SERVER_PORT": "http"}, "GRADIO_SERVER_PORT must be a port number"),
        ({"OLLAMA_HOST": "localhost:99999"}, "OLLAMA_HOST must be host, host:port"),
        ({"OLLAMA_HOST": "http://localhost:abc"}, "OLLAMA_HOST must be host, host:port"),
        ({"OLLAMA_HOST": "http://[::1"}, "OLLAMA_HOST must be host, host:port"),
        ({"PLAYGROUND_TIMEOUT_S": "nan"}, "PLAYGROUND_TIMEOUT_S must be a finite number, got 'nan'"),
        ({"PLAYGROUND_TIMEOUT_S": "inf"}, "PLAYGROUND_TIMEOUT_S must be a finite number, got 'inf'"),
        ({"PLAYGROUND_TIMEOUT_S": "1e9"}, "PLAYGROUND_TIMEOUT_S must be at most 86400"),
        ({"PLAYGROUND_DISCOVERY_TIMEOUT_S": "-inf"}, "PLAYGROUND_DISCOVERY_TIMEOUT_S must be a finite"),
        ({"PLAYGROUND_MODEL_CACHE_MB": "inf"}, "PLAYGROUND_MODEL_CACHE_MB must be a finite number"),
        ({"PLAYGROUND_HISTORY_MAX_AGE_DAYS": "nan"}, "PLAYGROUND_HISTORY_MAX_AGE_DAYS must be a finite"),
        ({"PLAYGROUND_HISTORY_MAX_AGE_DAYS": "inf"}, "PLAYGROUND_HISTORY_MAX_AGE_DAYS must be a finite"),
        ({"PLAYGROUND_HISTORY_MAX_COUNT": "1e999"}, "PLAYGROUND_HISTORY_MAX_COUNT must be a whole number"),
        ({"PLAYGROUND_ENGINE_WORKERS": "0"}, "PLAYGROUND_ENGINE_WORKERS must be positive"),
        ({"PLAYGROUND_ENGINE_WORKERS": "100000"}, "PLAYGROUND_ENGINE_WORKERS must be at most 256"),
        ({"PLAYGROUND_ENGINE_PROCESSES": "maybe"}, "PLAYGROUND_ENGINE_PROCESSES must be 1 or 0"),
        ({"PLAYGROUND_PUBLIC": "ture"}, "PLAYGROUND_PUBLIC must be 1 or 0"),
    ],
)
def test_a_bad_setting_names_its_variable(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    one_error_line(run_cli(tmp_path, "models", **env), expected)


def test_a_binary_endpoints_file(tmp_path: Path) -> None:
    endpoints = tmp_path / "endpoints.toml"
    endpoints.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary")
    result = run_cli(tmp_path, "models", PLAYGROUND_ENDPOINTS=str(endpoints))
    one_error_line(result, "PLAYGROUND_ENDPOINTS", str(endpoints), "not a text file")


def test_a_bad_port_on_the_command_line(tmp_path: Path) -> None:
    one_error_line(run_cli(tmp_path, "serve", "--port", "99999"), "1-65535", "--help")


def test_a_prompt_that_is_not_utf8_is_answered(tmp_path: Path, embedded_onnx_folder: Path) -> None:
    """argv bytes that are not UTF-8 reach Python as lone surrogates; they become U+FFFD, the rest stays."""
    prompt = b"\xff\xfe Say hello."
    result = run_cli(
        tmp_path, "chat", "-p", "onnx", "--temperature", "0", "--max-new-tokens", "8", "--json", prompt
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    out = json.loads(result.stdout)
    assert out["text"].strip() and out["metrics"]["finish_reason"] in {"stop", "length"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PLAYGROUND_TIMEOUT_S", "nan", "must be a finite number"),
        ("PLAYGROUND_TIMEOUT_S", "0", "must be positive"),
        ("PLAYGROUND_MODEL_CACHE_MB", "-inf", "must be a finite number"),
        ("PLAYGROUND_DISCOVERY_TIMEOUT_S", "Infinity", "must be a finite number"),
        ("PLAYGROUND_HISTORY_MAX_AGE_DAYS", "1e6", "must be at most 36500"),
        ("GRADIO_SERVER_PORT", "0", "must be a port number"),
        ("PLAYGROUND_BROWSER_HISTORY", "2", "must be 1 or 0"),
    ],
)
def test_numeric_settings_are_finite_and_in_range(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} {message}"):
        Settings.from_env({name: value})


def test_good_settings_still_read() -> None:
    settings = Settings.from_env(
        {
            "PLAYGROUND_TIMEOUT_S": "2.5",
            "GRADIO_SERVER_PORT": "8080",
            "OLLAMA_HOST": "0.0.0.0:11435",
            "PLAYGROUND_ENGINE_PROCESSES": "off",
            "PLAYGROUND_ENGINE_WORKERS": "3",
            "PLAYGROUND_PUBLIC": "yes",
        }
    )
    assert (settings.timeout_s, settings.server_port) == (2.5, 8080)
    assert not settings.engine_processes and settings.engine_workers == 3 and settings.public
    assert math.isfinite(Settings.from_env({}).timeout_s) and Settings.from_env({}).engine_processes


def test_our_own_bug_is_one_line_and_its_traceback_goes_to_the_log(tmp_path: Path) -> None:
    settings = Settings.from_env({"PLAYGROUND_DATA_DIR": str(tmp_path)})
    try:
        {}["missing"]  # a real bug: a KeyError raised from our code
    except KeyError as exc:
        line = _unexpected(exc, settings)
    log = tmp_path / "logs" / "cli-errors.log"
    assert "unexpected KeyError" in line and str(log) in line and "\n" not in line
    assert "Traceback" in log.read_text() and "test_bad_input.py" in log.read_text()


def test_every_setting_is_in_env_example() -> None:
    """.env.example is where an owner looks: each PLAYGROUND_ variable the settings read is there."""
    root = Path(__file__).resolve().parents[1]
    read = set(re.findall(r'"(PLAYGROUND_[A-Z_]+)"', (root / "playground" / "settings.py").read_text()))
    example = (root / ".env.example").read_text()
    assert len(read) > 30 and not {name for name in read if name not in example}


def test_an_empty_question_is_refused_as_the_api_refuses_it(tmp_path: Path) -> None:
    one_error_line(run_cli(tmp_path, "chat", "   "), "The question is empty")
