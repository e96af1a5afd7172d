"""The Instruct tab: streaming chat with any chat model, its metrics, its context and its raw prompt.

The chat region itself is chat_region.py (shared with the Vision and MoE tabs); this tab adds the `/chat`
endpoint for scripts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import gradio as gr

from ..answers import Finished, Request, Result
from ..branching import Branch, branch_from
from ..context import AppContext
from ..errors import InvalidOptionsError, PlaygroundError
from ..options import GenerationOptions
from ..text import valid_text
from ..token_view import token_note
from ..types import FinishReason
from . import render, widgets
from .chat_parts import with_format
from .chat_region import ChatRegion, RegionConfig, RegionUI
from .streaming import ThreadedStream

CONFIG = RegionConfig(prefix="instruct", tab="instruct")

log = logging.getLogger("playground.ui")


class InstructTab(ChatRegion):
    """The chat region with every chat model, and the `/chat` API."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx, CONFIG)
        self.api_event: Any = None  # the `/chat` event (admission counts it as an answer)
        self.token_event: Any = None  # `/chat_tokens`: the same answer with each token's probabilities
        self.branch_event: Any = None  # `/chat_branch`: an answer of `/chat_tokens` again from one token

    def build(self, owner: gr.State) -> RegionUI:
        ui = super().build(owner)
        self._build_api()
        return ui

    # The API endpoints. Each spells its parameters out: Gradio names an endpoint's parameters from the
    # function's signature (`*values` would show as param_0, param_1, ... and refuse keyword arguments).

    async def api_chat(
        self,
        question: str,
        model: str | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        max_new_tokens: int | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: str | None = None,
        json_schema: str | None = None,
        regex: str | None = None,
        request: gr.Request | None = None,
    ) -> AsyncIterator[str]:
        """Stream one answer to `question` as cumulative text; stateless, never written to the history.

        Every parameter but the question may be left out: the model is the embedded one, the sampling
        values are the model's recommended ones (the catalog's), then the playground's defaults.
        `json_schema` (a schema's JSON text) or `regex` holds the answer to it (structured output).
        """
        values = (question, model, system_prompt, temperature, top_p, top_k, max_new_tokens,
                  repetition_penalty, seed, stop)  # fmt: skip
        async for result in self._api_answer(values, 0, request, formats=(json_schema, regex)):
            yield result.text

    async def api_chat_tokens(
        self,
        question: str,
        model: str | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        max_new_tokens: int | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: str | None = None,
        logprobs: int | None = 5,
        request: gr.Request | None = None,
    ) -> dict[str, Any]:
        """`/chat_tokens`: `/chat`'s answer as one JSON object when it ends, with each generated token's
        probability and its `logprobs` best alternatives (1-10): {"text", "tokens": [{"text", "id",
        "logprob", "top": [...], "entropy"}], "note"}; `tokens` is empty where the provider gives none."""
        values = (question, model, system_prompt, temperature, top_p, top_k, max_new_tokens,
                  repetition_penalty, seed, stop)  # fmt: skip
        return await self._api_tokens(values, logprobs, request)

    async def api_chat_branch(
        self,
        question: str,
        tokens: Any,
        at: int,
        token: int,
        model: str | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        max_new_tokens: int | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: str | None = None,
        logprobs: int | None = 5,
        request: gr.Request | None = None,
    ) -> dict[str, Any]:
        """`/chat_branch`: the answer of an earlier `/chat_tokens` call (its `tokens`, with the same
        question and model) again from its token `at` (0 is the first), with the alternative `token` (an
        id among that token's `top`) forced there; `/chat_tokens`' result, the forced token marked."""
        values = (question, model, system_prompt, temperature, top_p, top_k, max_new_tokens,
                  repetition_penalty, seed, stop)  # fmt: skip
        try:
            if (
                not isinstance(tokens, list)
                or not isinstance(at, int | float)
                or not isinstance(token, int | float)
            ):
                raise InvalidOptionsError(
                    "Give `tokens` (a /chat_tokens result's list), `at` and `token` (numbers)."
                )
            branch = branch_from(tokens, int(at), int(token))
        except PlaygroundError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return await self._api_tokens(values, logprobs, request, branch)

    async def _api_tokens(
        self, values: tuple[Any, ...], logprobs: Any, request: gr.Request | None, branch: Branch | None = None
    ) -> dict[str, Any]:
        """The answer with its tokens' records, as one JSON object when it ends."""
        result = Result()
        async for drawn in self._api_answer(values, 5 if logprobs is None else logprobs, request, branch):
            result = drawn  # the same Result, drawn to its end
        return {
            "text": result.text,
            "tokens": [record.to_dict() for record in result.tokens],
            "note": token_note(result.spec, bool(result.tokens)),
        }

    async def _api_answer(
        self,
        values: tuple[Any, ...],
        logprobs: Any,
        request: gr.Request | None,
        branch: Branch | None = None,
        formats: tuple[Any, Any] = (None, None),
    ) -> AsyncIterator[Result]:
        """One answer for the API endpoints, drawn as it streams (the Result so far after each batch);
        stateless, never written to the history; a refusal or failure is the caller's error."""
        try:
            asked = replace(self._api_request(values, logprobs, request, formats), branch=branch)
            answer = self.ctx.answers.ask(asked)
            result = Result()
            batches = ThreadedStream(answer, stop=answer.stop_event, ends_itself=True).__aiter__()
            async with contextlib.aclosing(batches):  # closed at once when the caller leaves
                async for batch in batches:
                    for event in batch:
                        result.take(event)
                    ended = next((e for e in batch if isinstance(e, Finished)), None)
                    if ended is not None:
                        _raise_unless_complete(ended, result.text)
                    yield result
        except PlaygroundError as exc:  # one line in the server log, the message to the caller
            log.info("%s: %s", type(exc).__name__, exc)
            raise gr.Error(str(exc), print_exception=False) from None

    def _api_request(
        self, values: tuple[Any, ...], logprobs: Any, request: gr.Request | None, formats: tuple[Any, Any]
    ) -> Request:
        question, model, system_prompt, temperature, top_p, top_k, max_new, penalty, seed, stop = values
        if not isinstance(question, str) or not question.strip():
            raise InvalidOptionsError("Give a question: a non-empty string.")
        schema, pattern = formats
        texts = {"model": model, "system_prompt": system_prompt, "stop": stop, "json_schema": schema,
                 "regex": pattern}  # fmt: skip
        for name, value in texts.items():
            if value is not None and not isinstance(value, str):
                raise InvalidOptionsError(f"{name} must be a string, not {type(value).__name__}.")
        options = widgets.options_from(
            temperature, top_p, top_k, max_new, penalty, seed, valid_text(stop or "")
        )
        if logprobs:
            options = GenerationOptions.parse(**(options.model_dump() | {"logprobs": logprobs}))
        if schema and pattern:
            raise InvalidOptionsError("Give json_schema or regex, not both.")
        options = with_format(
            options, "JSON schema" if schema else "Regex" if pattern else "Text", schema or pattern or ""
        )
        messages = render.to_messages([{"role": "user", "content": valid_text(question)}],
                                      valid_text(system_prompt or ""))  # fmt: skip
        session = request.session_hash if request else None
        return Request(model or self.default_model, messages, options, owner=session)

    def _build_api(self) -> None:
        """`/chat`: the endpoint for scripts, tests and benchmarks, streaming the cumulative text.

        Its own hidden inputs, so that everything but the question has a default (the model's recommended
        sampling when a value is left out), and a named result.
        """
        with gr.Column(visible=False):
            inputs = [
                gr.Textbox(label="question"),
                gr.Textbox(self.default_model, label="model"),
                gr.Textbox("", label="system_prompt"),
                gr.Number(None, label="temperature"),
                gr.Number(None, label="top_p"),
                gr.Number(None, label="top_k"),
                gr.Number(None, label="max_new_tokens"),
                gr.Number(None, label="repetition_penalty"),
                gr.Number(None, label="seed"),
                gr.Textbox("", label="stop"),
            ]
            formats = [gr.Textbox("", label="json_schema"), gr.Textbox("", label="regex")]
            answer = gr.Textbox(label="answer")  # numbers stay unrounded: the options parser names a bad one
            trigger = gr.Button()
            count = gr.Number(5, label="logprobs")
            tokens = gr.JSON(label="answer_with_tokens")
            token_trigger = gr.Button()
            branched = [gr.JSON(label="tokens"), gr.Number(None, label="at"), gr.Number(None, label="token")]
            branch_result = gr.JSON(label="branch_with_tokens")
            branch_trigger = gr.Button()
        self.api_event = trigger.click(
            self.api_chat, [*inputs, *formats], answer, api_name="chat", concurrency_limit=4
        )
        self.token_event = token_trigger.click(
            self.api_chat_tokens, [*inputs, count], tokens, api_name="chat_tokens", concurrency_limit=4
        )
        self.branch_event = branch_trigger.click(
            self.api_chat_branch,
            [inputs[0], *branched, *inputs[1:], count],
            branch_result,
            api_name="chat_branch",
            concurrency_limit=4,
        )


def _raise_unless_complete(finished: Finished, text: str) -> None:
    """An answer that ended in an error, or was cut short by the engine's process or the connection,
    is an error for the caller, never an ordinary success; a stopped one is what arrived."""
    if finished.error:
        raise gr.Error(finished.error, print_exception=False)
    if finished.reason == FinishReason.INTERRUPTED:
        note = finished.metrics.note or "the connection or the engine died mid-answer"
        raise gr.Error(
            f"The answer was interrupted after {len(text)} characters: {note}", print_exception=False
        )
