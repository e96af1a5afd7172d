"""Each failure gives its own one-line message in the CLI (`python -m playground chat`), no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cloud.fake_server import FakeServer
from tests.support import ROOT

SECRET = "sk-cli-SECRET-5e6f7a"
CASES = [
    ("s401", "refused the key in CLI_KEY (401)"),
    ("s404", "(404)"),
    ("s410", "is gone (410)"),
    ("q429", "quota or rate limit reached"),
    ("s500", "failed with 500"),
    ("ctx", "too long"),
    ("hang", "did not answer within 2 s"),
]


def run_chat(tmp_path: Path, endpoints: str, model: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "endpoints.toml").write_text(endpoints)
    env = {**os.environ, "PLAYGROUND_DATA_DIR": str(tmp_path), "PLAYGROUND_ENDPOINTS": str(tmp_path / "endpoints.toml"),
           "CLI_KEY": SECRET, "PLAYGROUND_TIMEOUT_S": "2", "OLLAMA_HOST": "http://127.0.0.1:9"}  # fmt: skip
    command = [sys.executable, "-m", "playground", "chat", "-m", model, "--max-new-tokens", "8", "Hi"]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False
    )


@pytest.mark.parametrize(("scenario", "message"), CASES)
def test_failure_is_one_clear_line(tmp_path: Path, fake: FakeServer, scenario: str, message: str) -> None:
    endpoints = (
        f'[[endpoints]]\nname = "broken"\nbase_url = "{fake.url(scenario)}"\napi_key_env = "CLI_KEY"\n'
        'models = ["alpha"]\n'
    )
    result = run_chat(tmp_path, endpoints, "alpha@broken")
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stderr + result.stdout


def test_a_dropped_stream_prints_the_partial_answer_and_says_interrupted(
    tmp_path: Path, fake: FakeServer
) -> None:
    endpoints = f'[[endpoints]]\nname = "flaky"\nbase_url = "{fake.url("drop")}"\nmodels = ["alpha"]\n'
    result = run_chat(tmp_path, endpoints, "alpha@flaky")
    assert result.returncode == 1
    assert result.stdout.strip() == "The capital of France"
    assert "[interrupted" in result.stderr and "Traceback" not in result.stderr


def test_a_model_missing_because_discovery_timed_out_says_so(tmp_path: Path, fake: FakeServer) -> None:
    """An endpoint that lists its models (no `models` configured) and hangs: not just "Unknown model"
    (PLAYGROUND_TIMEOUT_S=1e-9 ended there before), but why the list is empty."""
    endpoints = f'[[endpoints]]\nname = "slow"\nbase_url = "{fake.url("hang")}"\n'
    result = run_chat(tmp_path, endpoints, "alpha@slow")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: Unknown model 'alpha'") and len(result.stderr.splitlines()) == 1
    assert "slow could not list its models:" in result.stderr and "did not answer within" in result.stderr
