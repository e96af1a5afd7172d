"""The token view on an OpenAI-compatible server: the request carries `logprobs` and `top_logprobs`;
`transformers serve` ignores them (no records, and the view says the server gives none); a server that
returns them (the recording fake, beside the real one) fills the view with its figures."""

from __future__ import annotations

from pathlib import Path

from playground.answers import Request
from playground.context import AppContext
from playground.options import GenerationOptions
from playground.token_view import SERVER_NOTE, token_note
from playground.types import Message
from tests.cloud.conftest import Served
from tests.cloud.fake_server import ANSWER, FakeServer
from tests.support import make_settings

QUESTION = [Message("user", "What is the capital of France?")]
ASKED = GenerationOptions(temperature=0.0, max_new_tokens=8, logprobs=5)


def test_transformers_serve_gets_the_request_and_the_view_says_it_gives_none(
    served: Served, tmp_path: Path
) -> None:
    ctx = AppContext.create(make_settings(tmp_path / "data", OPENAI_BASE_URL=served.base_url))
    try:
        model = f"{served.model}@openai-compatible"
        before = served.log.read_text(errors="replace")
        result = ctx.answers.complete(Request(model, QUESTION, ASKED))
        logged = served.log.read_text(errors="replace")[len(before) :]
    finally:
        ctx.close()
    ignored = [line for line in logged.splitlines() if "Ignoring unsupported fields" in line]
    assert ignored and "'logprobs'" in ignored[-1] and "'top_logprobs'" in ignored[-1], "it got them"
    assert result.text.strip() and result.tokens == []
    assert "gives no token probabilities" in token_note(result.spec, bool(result.tokens))


def test_a_server_that_returns_logprobs_fills_the_view(fake: FakeServer, tmp_path: Path) -> None:
    ctx = AppContext.create(make_settings(tmp_path / "data", OPENAI_BASE_URL=fake.url("logprobs")))
    try:
        result = ctx.answers.complete(Request("alpha@openai-compatible", QUESTION, ASKED))
    finally:
        ctx.close()
    (body,) = [r.body for r in fake.requests("logprobs") if r.method == "POST"]
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    assert result.text == "".join(ANSWER)
    assert [t.text for t in result.tokens] == ANSWER and [t.index for t in result.tokens] == [0, 1, 2]
    first = result.tokens[0]
    assert first.id is None and first.logprob == -0.1 and [c.text for c in first.top] == [ANSWER[0], "X"]
    assert token_note(result.spec, True) == SERVER_NOTE
