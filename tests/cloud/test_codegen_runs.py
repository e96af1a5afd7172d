"""Get code and the wire never drift: each script, run for real, sends what the adapter sends (to the
recording server) or passes the local engine's own options, and prints the engine's answer."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from playground.catalog import load_catalog
from playground.codegen import snippet
from playground.options import GenerationOptions
from playground.providers import build_providers
from playground.providers.cloud import build_cloud_providers
from playground.registry import Registry
from playground.settings import Settings
from playground.types import FinishReason, Message, ModelSpec
from tests.cloud.fake_server import FakeServer
from tests.cloud.helpers import answer, collect
from tests.support import QUESTION

HOSTILE_ID = 'x"""\nimport os; os.system("echo pwned")\n"""'
MESSAGES = [
    Message("system", "Be brief. '''\nimport os  # pwned\n'''"),
    Message("user", 'Say "hi" \\ then \'bye\'\r\n"""'),
]
# Six stops: the endpoint gets four; "Paris" (the fifth) cuts the fake server's answer on both sides.
OPTIONS = GenerationOptions(
    temperature=0.3,
    top_p=0.8,
    top_k=20,
    repetition_penalty=1.1,
    seed=5,
    max_new_tokens=40,
    stop=("s1", "s2", "s3", "s4", "Paris", "zzz"),
)
LOCAL_OPTIONS = [
    GenerationOptions(temperature=0.0, max_new_tokens=24),
    GenerationOptions(temperature=0.6, top_p=0.9, max_new_tokens=24, repetition_penalty=1.3),
    GenerationOptions(temperature=0.6, top_k=40, seed=9, max_new_tokens=24, stop=("a", "b")),
]


def _run(code: str, tmp_path: Path, **env: str) -> str:
    path = tmp_path / "script.py"
    path.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _lab(cloud_settings: Callable[..., Settings], tmp_path: Path, kind: str, url: str) -> ModelSpec:
    config = tmp_path / "endpoints.toml"
    config.write_text(
        "[[endpoints]]\n"
        f'name = "lab"\nkind = "{kind}"\nbase_url = "{url}"\napi_key_env = "LAB_KEY"\n'
        f"sampling_extras = true\nmodels = [{json.dumps(HOSTILE_ID)}]\n"
        'headers = { "X-Tenant" = "${LAB_TENANT}" }\n'
    )
    settings = cloud_settings(PLAYGROUND_ENDPOINTS=str(config), LAB_KEY="lab-key-1", LAB_TENANT="t7")
    (cloud,) = [p for p in build_cloud_providers(settings, []) if p.name == "lab"]
    (spec,) = cloud.specs()
    text, metrics = answer(cloud.load(spec), MESSAGES, OPTIONS)
    assert (text, metrics.finish_reason) == ("The capital of France is ", FinishReason.STOP)
    return spec


@pytest.mark.parametrize("kind", ["openai", "azure-ai"])
def test_the_script_sends_what_the_adapter_sends(
    cloud_settings: Callable[..., Settings], fake: FakeServer, tmp_path: Path, kind: str
) -> None:
    scenario = f"ok~codegen-{kind}"
    spec = _lab(cloud_settings, tmp_path, kind, fake.url(scenario))
    _, code = snippet(spec, MESSAGES, OPTIONS)
    printed = _run(code, tmp_path, LAB_KEY="lab-key-1", LAB_TENANT="t7")
    assert printed == "The capital of France is \n", "the script applies the stops beyond 4 too"
    sent, ran = fake.requests(scenario)
    assert sent.body.pop("stream_options", None) == {"include_usage": True}
    assert ran.body == sent.body, "the script's request is the adapter's (but for asking for usage)"
    assert ran.body["model"] == HOSTILE_ID and ran.body["stop"] == ["s1", "s2", "s3", "s4"]
    extras = {k: ran.body[k] for k in ("top_k", "repetition_penalty")}
    assert extras == {"top_k": 20, "repetition_penalty": 1.1}
    for header in ("x-tenant", "authorization", "api-key", "extra-parameters"):
        assert ran.headers.get(header) == sent.headers.get(header), header
    assert ran.headers["x-tenant"] == "t7"


@pytest.fixture
def local_registry(cloud_settings: Callable[..., Settings], embedded_onnx_folder: Path) -> Registry:
    return Registry(build_providers(cloud_settings(), load_catalog()))


def _call_keywords(code: str, name: str, skip: set[str]) -> dict[str, object]:
    """The literal keyword arguments of the call to `name` in a script (by attribute or function name)."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == name:
                return {
                    k.arg: ast.literal_eval(k.value)
                    for k in node.keywords
                    if k.arg is not None and k.arg not in skip
                }
    raise AssertionError(f"no call to {name} in the script")


def test_the_onnx_script_passes_the_engines_options_and_prints_its_answer(
    local_registry: Registry, embedded_onnx_folder: Path, tmp_path: Path
) -> None:
    from playground.providers.local.onnx import OnnxModel

    spec = local_registry.resolve("smollm2-135m-instruct@onnx")
    model = OnnxModel(spec, embedded_onnx_folder)
    for options in LOCAL_OPTIONS:
        engine = model._search_options(100, options)
        assert engine.pop("max_length") == 100 + options.max_new_tokens
        _, code = snippet(spec, MESSAGES, options, model_dir=embedded_onnx_folder)
        assert _call_keywords(code, "set_search_options", {"max_length"}) == engine
    options = GenerationOptions(temperature=0.0, max_new_tokens=32, stop=("Paris",))
    ask = [Message("user", QUESTION)]
    expected, _ = collect(model.stream(ask, options))
    assert expected.startswith("The capital of France is"), expected
    _, code = snippet(spec, ask, options, model_dir=embedded_onnx_folder)
    assert _run(code, tmp_path, MODEL_DIR=str(embedded_onnx_folder)) == expected + "\n"


def test_the_transformers_script_passes_the_engines_options_and_prints_its_answer(
    local_registry: Registry, embedded_hf_folder: Path, tmp_path: Path
) -> None:
    from playground.providers.local.hf import TransformersModel

    spec = local_registry.resolve("smollm2-135m-instruct@transformers")
    model = TransformersModel(spec, embedded_hf_folder)
    skip = {"max_new_tokens", "pad_token_id", "stopping_criteria", "streamer", "stop_strings", "tokenizer"}
    for options in LOCAL_OPTIONS:
        engine = model._generate_kwargs(options, threading.Event())
        assert engine["max_new_tokens"] == options.max_new_tokens
        engine = {k: v for k, v in engine.items() if k not in skip}
        _, code = snippet(spec, MESSAGES, options, model_dir=embedded_hf_folder)
        assert _call_keywords(code, "dict", skip) == engine
    options = GenerationOptions(temperature=0.0, max_new_tokens=32, stop=("Paris",))
    ask = [Message("user", QUESTION)]
    expected, _ = collect(model.stream(ask, options))
    assert expected.startswith("The capital of France is"), expected
    _, code = snippet(spec, ask, options, model_dir=embedded_hf_folder)
    assert _run(code, tmp_path, OMP_NUM_THREADS="1") == expected + "\n"
