"""Structured output (issue 18): answers of the real embedded model held to a JSON schema and to a regex
on both local engines, checked afterwards; a bad schema or pattern is one clear message; the CLI's
--json-schema and --regex."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from playground.answers import Request
from playground.context import AppContext
from playground.errors import InvalidOptionsError
from playground.history import new_browser_id
from playground.options import GenerationOptions
from playground.settings import Settings
from playground.structured import ResponseFormat
from playground.types import Message
from tests.test_cli import cli

ENGINES = ["smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "cities": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
        "retired": {"type": "boolean"},
    },
    "required": ["name", "age", "cities", "retired"],
    "additionalProperties": False,
}
QUESTIONS = ["Describe a person as JSON.", "Who wrote Hamlet?", "Write a poem about the sea."]
PATTERN = r"(yes|no), because [a-z ]{5,40}\."


def answer(ctx: AppContext, model: str, question: str, fmt: ResponseFormat, **options: object) -> str:
    chosen = GenerationOptions(max_new_tokens=120, response_format=fmt, **options)  # type: ignore[arg-type]
    result = ctx.answers.complete(Request(model, [Message("user", question)], chosen))
    assert not result.error, result.error
    return result.text


@pytest.mark.parametrize("model", ENGINES)
def test_every_answer_holds_to_the_json_schema(ctx: AppContext, model: str) -> None:
    """Whatever the question (even one that asks for a poem), greedy or sampled."""
    fmt = ResponseFormat(kind="json_schema", schema_text=json.dumps(PERSON))
    answers = [answer(ctx, model, q, fmt, temperature=0.0) for q in QUESTIONS]
    answers.append(answer(ctx, model, QUESTIONS[0], fmt, temperature=0.9, seed=5))
    for text in answers:
        value = json.loads(text)
        assert set(value) == set(PERSON["required"]), text
        assert isinstance(value["age"], int) and isinstance(value["retired"], bool)
        assert fmt.check(text).passed


@pytest.mark.parametrize("model", ENGINES)
def test_every_answer_matches_the_regex(ctx: AppContext, model: str) -> None:
    fmt = ResponseFormat(kind="regex", pattern=PATTERN)
    for question in ["Is the sky green?", "Is water wet?", "Tell me a story."]:
        text = answer(ctx, model, question, fmt, temperature=0.0)
        assert re.fullmatch(PATTERN, text.strip()), text
        assert fmt.describe(fmt.check(text)) == "✓ The answer holds to the pattern."


def test_without_a_format_the_model_answers_as_it_likes(ctx: AppContext) -> None:
    text = answer(ctx, ENGINES[0], QUESTIONS[2], None, temperature=0.0)  # type: ignore[arg-type]
    fmt = ResponseFormat(kind="json_schema", schema_text=json.dumps(PERSON))
    verdict = fmt.check(text)
    assert not verdict.passed and verdict.detail.startswith("not valid JSON")
    assert fmt.describe(verdict).startswith("✗ The answer does not hold to the JSON schema: not valid JSON")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kind": "json_schema", "schema_text": "{not json"}, "the schema is not valid JSON"),
        ({"kind": "json_schema", "schema_text": '{"type": "nonsense"}'}, "not a valid JSON schema"),
        ({"kind": "json_schema", "schema_text": "[1, 2]"}, "the schema must be a JSON object"),
        (
            {"kind": "json_schema", "schema_text": '{"$ref": "https://example.com/s.json"}'},
            "only refer to its own",
        ),
        ({"kind": "regex", "pattern": "(unclosed"}, "not a regular expression"),
        ({"kind": "regex", "pattern": "(?=look)ahead"}, "not a regular expression the engines take"),
        ({"kind": "regex", "pattern": ""}, "needs a pattern"),
        ({"kind": "xml"}, "response_format"),
    ],
)
def test_a_bad_format_is_one_clear_message(values: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidOptionsError, match=re.escape(message)):
        GenerationOptions.parse(response_format=values)


def test_a_pattern_that_backtracks_for_ever_is_checked_at_once() -> None:
    """The check runs an automaton (grammar.py): Python's `re` would take 2^40 steps on these."""
    fmt = ResponseFormat(kind="regex", pattern="(a+)+$")
    verdict = fmt.check("a" * 40 + "!")
    assert not verdict.passed and "from character 40" in verdict.detail
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    held = ResponseFormat(kind="json_schema", schema_text=json.dumps(schema))
    assert not held.check(json.dumps({"s": "a" * 40 + "!"})).passed and held.check('{"s": "aaa"}').passed


def test_the_check_names_the_first_error() -> None:
    fmt = ResponseFormat(kind="json_schema", schema_text=json.dumps(PERSON))
    verdict = fmt.check('{"name": "Ann", "age": "old", "cities": [], "retired": false}')
    assert not verdict.passed and verdict.detail == "age: 'old' is not of type 'integer'"
    assert (
        not ResponseFormat(kind="json").check("[1]").passed and ResponseFormat(kind="json").check("{}").passed
    )


@pytest.mark.parametrize("engine", ["onnx", "transformers"])
def test_the_cli_holds_an_answer_to_a_schema_file_and_a_regex(
    settings: Settings, engine: str, tmp_path: Path
) -> None:
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps(PERSON))
    common = [
        "chat",
        "-m",
        "smollm2-135m-instruct",
        "-p",
        engine,
        "--temperature",
        "0",
        "--max-new-tokens",
        "120",
    ]
    result = cli(settings, *common, "--json-schema", str(schema), "--json", "Describe a person.")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["format_check"] == {"passed": True, "detail": ""} and set(json.loads(out["text"])) == set(
        PERSON["required"]
    )
    result = cli(settings, *common, "--regex", PATTERN, "Is the sky green?")
    assert result.returncode == 0 and re.fullmatch(PATTERN, result.stdout.strip()), result.stdout
    assert "✓ The answer holds to the pattern." in result.stderr


def test_the_cli_says_what_is_wrong_with_a_schema_file(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": 5}')
    result = cli(settings, "chat", "--json-schema", str(bad), "Hi")
    assert (
        result.returncode != 0
        and "not a valid JSON schema" in result.stderr
        and "Traceback" not in result.stderr
    )
    missing = cli(settings, "chat", "--json-schema", str(tmp_path / "none.json"), "Hi")
    assert missing.returncode != 0 and "Cannot read the schema file" in missing.stderr


def test_the_page_control_holds_the_answer_and_says_whether_it_holds(ctx: AppContext) -> None:
    """The Instruct tab with an example picked in Response format: the answer is JSON of the schema and
    the notice under it says so; a broken schema is a message and nothing is asked."""
    from tests.test_tabs import answer as page_answer
    from tests.test_tabs import ask, build

    _, _, regions = build(ctx)
    instruct = regions["instruct"]
    kind, spec = instruct.pick_format("A person (JSON schema)")
    assert kind == "JSON schema" and '"retired"' in spec
    long = (0.0, 1.0, 0, 160, 1.0, -1, "")  # greedy, 160 new tokens: room for the whole object
    updates = page_answer(
        instruct,
        ask("Describe a person."),
        new_browser_id(),
        ENGINES[0],
        response_format=(kind, spec),
        options=long,
    )
    conversation, conversation_id, chat = updates[-1][0], updates[-1][1], updates[-1][2]
    assert json.loads(conversation[-1]["content"])["retired"] in (True, False)
    assert conversation[-1]["metrics"]["checked"] == "✓ The answer holds to the JSON schema."
    assert "✓ The answer holds to the JSON schema." in str(chat[-1]), "said in the line under the answer"
    owner = conversation_id and ctx.history.conversations.owner_of(conversation_id)
    stored = ctx.history.conversations.get_conversation(owner, conversation_id).messages[-1]
    assert stored.metrics is not None and stored.metrics["checked"].startswith("✓"), "kept with the answer"
    broken = page_answer(
        instruct, ask("Hi"), new_browser_id(), ENGINES[0], response_format=("JSON schema", "{oops")
    )
    assert "Response format: the schema is not valid JSON" in broken[-1][4]
    assert not any(t["role"] == "assistant" for t in broken[-1][0]), "nothing was asked"


def test_api_callers_hold_chat_to_a_schema_or_a_pattern(ctx: AppContext) -> None:
    """`/chat` takes `json_schema` or `regex` (its result is still the text): the answer holds to it."""
    from gradio_client import Client

    from tests.support import serving

    with serving(ctx) as url:
        client = Client(url, verbose=False)
        shaped = client.predict(QUESTIONS[0], temperature=0, max_new_tokens=160, json_schema=json.dumps(PERSON),
                                api_name="/chat")  # fmt: skip
        matched = client.predict(
            QUESTIONS[1], temperature=0, max_new_tokens=40, regex=PATTERN, api_name="/chat"
        )
        both = None
        try:
            client.predict(QUESTIONS[1], max_new_tokens=4, json_schema="{}", regex="x", api_name="/chat")
        except Exception as exc:  # gradio_client raises the app's message
            both = str(exc)
    assert ResponseFormat(kind="json_schema", schema_text=json.dumps(PERSON)).check(shaped).passed, shaped
    assert re.fullmatch(PATTERN, matched), matched
    assert both is not None and "not both" in both
