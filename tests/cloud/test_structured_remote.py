"""Structured output on an OpenAI-compatible server: the request carries `response_format`;
`transformers serve` ignores it (it says so in its log) and the answer is checked all the same; a regex
has no OpenAI form, so nothing is sent for it and the answer is only checked (the recording fake)."""

from __future__ import annotations

import json
from pathlib import Path

from playground.answers import Request
from playground.context import AppContext
from playground.options import GenerationOptions
from playground.structured import ResponseFormat
from playground.types import Message
from tests.cloud.conftest import Served
from tests.cloud.fake_server import FakeServer
from tests.support import make_settings

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
FORMAT = ResponseFormat(kind="json_schema", schema_text=json.dumps(SCHEMA))
QUESTION = [Message("user", "What is the capital of France?")]


def test_transformers_serve_gets_the_format_ignores_it_and_the_answer_is_checked(
    served: Served, tmp_path: Path
) -> None:
    ctx = AppContext.create(make_settings(tmp_path / "data", OPENAI_BASE_URL=served.base_url))
    options = GenerationOptions(temperature=0.0, max_new_tokens=12, response_format=FORMAT)
    try:
        before = served.log.read_text(errors="replace")
        result = ctx.answers.complete(Request(f"{served.model}@openai-compatible", QUESTION, options))
        logged = served.log.read_text(errors="replace")[len(before) :]
    finally:
        ctx.close()
    ignored = [line for line in logged.splitlines() if "Ignoring unsupported fields" in line]
    assert ignored and "'response_format'" in ignored[-1], "the server got it (and ignored it)"
    shown = FORMAT.describe(FORMAT.check(result.text))
    assert result.text.strip() and shown.startswith(
        "✗ The answer does not hold to the JSON schema: not valid JSON"
    )


def test_the_request_carries_the_schema_and_a_regex_sends_nothing(fake: FakeServer, tmp_path: Path) -> None:
    ctx = AppContext.create(make_settings(tmp_path / "data", OPENAI_BASE_URL=fake.url("ok~structured")))
    regex = ResponseFormat(kind="regex", pattern=r"The capital .*")
    try:
        for fmt in (FORMAT, ResponseFormat(kind="json"), regex):
            options = GenerationOptions(temperature=0.0, max_new_tokens=12, response_format=fmt)
            ctx.answers.complete(Request("alpha@openai-compatible", QUESTION, options))
    finally:
        ctx.close()
    bodies = [r.body for r in fake.requests("ok~structured") if r.method == "POST"]
    assert bodies[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
    }
    assert bodies[1]["response_format"] == {"type": "json_object"}
    assert "response_format" not in bodies[2]
