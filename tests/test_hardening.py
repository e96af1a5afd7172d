"""The API a script calls (the README's example, defaults, clear errors, text that is not valid Unicode),
the recommended sampling per model, and the rewriting of untrusted Markdown."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import urllib.error
import urllib.request

import pytest
from gradio_client import Client

from playground.answers import Request
from playground.catalog import load_catalog
from playground.context import AppContext
from playground.options import GenerationOptions
from playground.types import Message
from playground.ui.instruct import InstructTab
from playground.ui.render import safe_markdown
from tests.support import QUESTION, ROOT

EMBEDDED = "smollm2-135m-instruct@onnx"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.S)
    assert found, "the README's API section has its example"
    return found.group(1)


def test_the_readme_example_runs_against_the_app(app_url: str) -> None:
    code = readme_example().replace("http://127.0.0.1:7860/", app_url)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert "Paris" in out.getvalue()


def test_the_api_shows_its_endpoints_with_defaults_and_a_named_result(app_url: str) -> None:
    with urllib.request.urlopen(app_url + "gradio_api/info") as response:
        info = json.load(response)
    assert list(info["named_endpoints"]) == ["/chat", "/chat_tokens", "/chat_branch"]
    assert not info["unnamed_endpoints"]
    tokens = info["named_endpoints"]["/chat_tokens"]
    assert [p["parameter_name"] for p in tokens["parameters"]][-1] == "logprobs"
    assert [r["label"] for r in tokens["returns"]] == ["answer_with_tokens"]
    branch = info["named_endpoints"]["/chat_branch"]
    required = [p["parameter_name"] for p in branch["parameters"] if not p["parameter_has_default"]]
    assert required[:4] == ["question", "tokens", "at", "token"]
    assert [r["label"] for r in branch["returns"]] == ["branch_with_tokens"]
    chat = info["named_endpoints"]["/chat"]
    required = [p["parameter_name"] for p in chat["parameters"] if not p["parameter_has_default"]]
    assert required == ["question"]
    defaults = {p["parameter_name"]: p["parameter_default"] for p in chat["parameters"]}
    assert defaults["model"] == EMBEDDED and defaults["temperature"] is None
    assert [r["label"] for r in chat["returns"]] == ["answer"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"temperature": "warm"}, "temperature: Input should be a valid number"),
        ({"top_k": "many"}, "top_k: Input should be a valid integer"),
        ({"max_new_tokens": 2.5}, "max_new_tokens"),
        ({"model": "no-such-model"}, "Unknown model 'no-such-model'"),
    ],
)
def test_a_bad_api_value_answers_a_message(app_url: str, values: dict[str, object], message: str) -> None:
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match=re.escape(message)):
        client.predict("Hi", api_name="/chat", **values)


def raw_chat_call(app_url: str, data: list[object]) -> str:
    """A /chat call as raw HTTP (no gradio_client): post the inputs, then read the event stream."""
    request = urllib.request.Request(
        app_url + "gradio_api/call/chat",
        data=json.dumps({"data": data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        event = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{app_url}gradio_api/call/chat/{event}") as response:
        return response.read().decode()


def test_a_lone_surrogate_through_the_api_gets_an_answer(app_url: str) -> None:
    """gradio_client cannot even encode "\\ud800"; a JSON escape in a raw request is how one arrives."""
    stream = raw_chat_call(
        app_url, ["Say hello \ud800", EMBEDDED, "", 0, None, None, 16, None, None, "", "", ""]
    )
    assert "event: complete" in stream, stream
    final = json.loads(stream.rsplit("data:", 1)[1])
    assert isinstance(final[0], str) and final[0].strip()


def test_a_call_missing_arguments_answers_a_message(app_url: str) -> None:
    """A raw call with fewer inputs than /chat takes: refused at the door with what /chat takes (not
    Gradio's message, which lists its components' Python reprs)."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        raw_chat_call(app_url, [])
    assert refused.value.code == 400
    detail = json.loads(refused.value.read())["detail"]
    assert "/chat takes 12 values (question, model" in detail and "0 were given" in detail
    assert "object at 0x" not in detail


def test_every_catalog_model_says_where_its_sampling_comes_from() -> None:
    published = [e for e in load_catalog() if any("repo" in s or "embedded" in s for s in e.sources.values())]
    assert len(published) >= 10
    for entry in published:  # (test-only demo models have no card)
        assert entry.sampling is not None, entry.key
        assert entry.sampling.source.startswith("https://huggingface.co/"), entry.key
        assert entry.sampling.values or entry.sampling.note, entry.key  # what the source says
    smollm2 = next(e for e in load_catalog() if e.key == "smollm2-135m-instruct")
    assert smollm2.sampling is not None
    assert smollm2.sampling.values == {"temperature": 0.2, "top_p": 0.9}


def test_the_recommended_sampling_fills_only_what_the_caller_left_out(ctx: AppContext) -> None:
    ask = [Message("user", QUESTION)]
    chosen = ctx.chat.preview(EMBEDDED, ask, GenerationOptions.parse()).options
    assert (chosen.temperature, chosen.top_p) == (0.2, 0.9)
    mine = ctx.chat.preview(EMBEDDED, ask, GenerationOptions.parse(temperature=0, top_p=1)).options
    assert (mine.temperature, mine.top_p) == (0.0, 1.0)


def test_picking_a_model_sets_its_sampling_and_names_the_source(ctx: AppContext) -> None:
    tab = InstructTab(ctx)
    _, _, temperature, top_p, top_k, penalty, note = tab.describe_model(EMBEDDED)
    assert (temperature, top_p, top_k, penalty) == (0.2, 0.9, 0, 1.0)
    assert "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct" in note
    _, _, temperature, top_p, *_, note = tab.describe_model("phi-3.5-mini@onnx")
    defaults = GenerationOptions()
    assert (temperature, top_p) == (defaults.temperature, defaults.top_p)
    assert "playground's defaults" in note and "generation_config.json" in note


def test_the_embedded_model_with_its_defaults_answers_sensibly(ctx: AppContext) -> None:
    text = ctx.answers.complete(
        Request(EMBEDDED, [Message("user", QUESTION)], GenerationOptions.parse(seed=7))
    ).text
    assert "Paris" in text


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        ("see ![x](http://203.0.113.9/a.png)", "see 🖼 [x](http://203.0.113.9/a.png)"),
        ("![mine](/gradio_api/file=/tmp/a.png)", "![mine](/gradio_api/file=/tmp/a.png)"),
        ("![x](//203.0.113.9/a.png)", "🖼 [x](//203.0.113.9/a.png)"),
        ('<img src=x onerror="alert(1)">', '&lt;img src=x onerror="alert(1)">'),
        ("keep `<b>` in code", "keep `<b>` in code"),
        ("\\`<img src=x>`", "\\`&lt;img src=x>`"),  # an escaped backtick opens no code span
        ("| `a | <img src=x>` |", "| `a | &lt;img src=x>` |"),  # table cells split code spans
        ("```html\n<img src=x>\n```\n<i>", "\n``` html\n<img src=x>\n```\n&lt;i>"),
        ("- ```\n  x\n  ```\n<img src=x>", "- ```\n  x\n\n``` \n<img src=x>\n```\n"),
        ("```mermaid\nA\n```", "\n``` mermaid\nA\n```\n"),
        ("$$x$$ `<b>`", "$\u2060$x$\u2060$ `<b>`"),  # Gradio's LaTeX would read code as HTML
        ("$$x^2$$", "$$x^2$$"),
        ("lone \ud800", "lone \ufffd"),
    ],
)
def test_untrusted_markdown_is_rewritten(hostile: str, shown: str) -> None:
    assert safe_markdown(hostile) == shown


def test_a_user_error_is_one_log_line_and_no_traceback(
    app_url: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="playground")
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="Unknown model"):
        client.predict("Hi", api_name="/chat", model="no-such-model-at-all")
    lines = [r for r in caplog.records if "no-such-model-at-all" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "Traceback" not in capfd.readouterr().err
