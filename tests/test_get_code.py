"""Get code, as a student uses it: `python -m playground code` prints the script the page gives, and the
script, run outside the app, prints the answer the app gave (greedy); the script is for the answer on
screen (the conversation up to its last question), with where the model lies and how to get it elsewhere."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from playground.answers import Request
from playground.codegen import EMPTY, code_for
from playground.context import AppContext
from playground.options import GenerationOptions
from playground.settings import Settings
from playground.types import Message
from tests.support import QUESTION
from tests.test_cli import cli

GREEDY = GenerationOptions(temperature=0.0, max_new_tokens=12)


def run_script(code: str, tmp_path: Path) -> str:
    path = tmp_path / "script.py"
    path.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "MODEL_DIR"}
    done = subprocess.run(
        [sys.executable, str(path)],
        env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def script_messages(code: str) -> list[dict[str, str]]:
    """The `messages = [...]` list a script sends."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "messages":
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return value
    raise AssertionError("no messages in the script")


@pytest.mark.parametrize("engine", ["onnx", "transformers"])
def test_the_code_command_prints_a_script_that_repeats_the_apps_greedy_answer(
    ctx: AppContext, settings: Settings, tmp_path: Path, engine: str
) -> None:
    model = f"smollm2-135m-instruct@{engine}"
    shown = ctx.answers.complete(Request(model, [Message("user", QUESTION)], GREEDY)).text
    assert shown.strip(), "the app answered"
    printed = cli(settings, "code", "-m", model, "--temperature", "0", "--max-new-tokens", "12", QUESTION)
    assert printed.returncode == 0, printed.stderr
    _, page = code_for(ctx.registry, Request(model, [Message("user", QUESTION)], GREEDY))
    assert printed.stdout == page, "the command and the page share one builder"
    elsewhere = {
        "onnx": "onnxruntime_genai.models.builder -m HuggingFaceTB/SmolLM2-135M-Instruct",
        "transformers": "MODEL_DIR=HuggingFaceTB/SmolLM2-135M-Instruct",
    }
    assert elsewhere[engine] in page, "the script says how to get the model on another machine"
    assert "'embedded'" not in page
    folder = ctx.registry.folder(ctx.registry.resolve(model))
    assert folder is not None and repr(str(folder)) in page, "the model's real folder here"
    assert run_script(page, tmp_path) == shown + "\n"


def test_the_script_is_for_the_answer_on_screen_not_a_new_reply(ctx: AppContext) -> None:
    conversation = [
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", "Hello!"),
        Message("user", QUESTION),
        Message("assistant", "Paris."),
    ]
    for model in ("smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"):
        _, code = code_for(ctx.registry, Request(model, conversation, GREEDY))
        sent = script_messages(code)
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
        assert sent[-1]["content"] == QUESTION


def test_an_empty_conversation_says_what_to_do(ctx: AppContext) -> None:
    for messages in ([], [Message("system", "Be brief.")]):
        language, code = code_for(ctx.registry, Request("smollm2-135m-instruct@onnx", messages, GREEDY))
        assert (language, code) == ("python", EMPTY)
        assert "ask a question" in code


def test_the_models_sampling_defaults_are_in_the_script(ctx: AppContext) -> None:
    """At the card's values, as the answer was sent: the 135M model's card samples at 0.2, top-p 0.9."""
    ask = [Message("user", QUESTION)]
    _, code = code_for(ctx.registry, Request("smollm2-135m-instruct@transformers", ask, GenerationOptions()))
    assert "temperature=0.2" in code and "top_p=0.9" in code


@pytest.mark.parametrize("engine", ["onnx", "transformers"])
def test_the_script_holds_its_answer_to_the_same_response_format(
    ctx: AppContext, tmp_path: Path, engine: str
) -> None:
    """A JSON schema in the request: the script applies it in the engine's own form (ONNX Runtime
    GenAI's set_guidance, llguidance's processor for transformers) and prints the app's greedy answer."""
    import json

    from playground.structured import ResponseFormat

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 30}},
        "required": ["city"],
    }
    fmt = ResponseFormat(kind="json_schema", schema_text=json.dumps(schema))
    options = GenerationOptions(temperature=0.0, max_new_tokens=40, response_format=fmt)
    request = Request(f"smollm2-135m-instruct@{engine}", [Message("user", QUESTION)], options)
    shown = ctx.answers.complete(request).text
    assert json.loads(shown)["city"], shown
    _, code = code_for(ctx.registry, request)
    assert ("set_guidance" in code) if engine == "onnx" else ("grammar_from_json_schema" in code)
    assert run_script(code, tmp_path).strip() == shown.strip()
