"""The chat service: options, context trimming with a notice, the prompt a learner sees."""

from __future__ import annotations

import pytest

from playground.chat import fit_to_window
from playground.context import AppContext
from playground.errors import InvalidOptionsError, PromptTooLongError
from playground.options import GenerationOptions
from playground.types import Message
from tests.support import loaded


def test_nonsense_parameters_get_a_clear_message() -> None:
    with pytest.raises(InvalidOptionsError, match="temperature"):
        GenerationOptions.parse(temperature=9)
    with pytest.raises(InvalidOptionsError, match="max_new_tokens"):
        GenerationOptions.parse(max_new_tokens=0)
    with pytest.raises(InvalidOptionsError, match="top_p"):
        GenerationOptions.parse(top_p="lots")
    assert GenerationOptions.parse(seed=-1, stop="###\n\nEND").stop == ("###", "END")


def long_conversation(turns: int) -> list[Message]:
    messages = [Message("system", "You are terse.")]
    for i in range(turns):
        messages += [
            Message("user", f"Question {i}: " + "tell me more " * 20),
            Message("assistant", "ok " * 30),
        ]
    return [*messages, Message("user", "And finally, what is the capital of France?")]


def test_long_conversations_are_trimmed_to_the_window(ctx: AppContext) -> None:
    model = loaded(ctx.registry, "smollm2-135m-instruct@onnx")

    def count(messages: object) -> int:
        return model.count_tokens(model.render_prompt(messages))  # type: ignore[arg-type]

    fitted = fit_to_window(long_conversation(10), count, context_window=512, max_new_tokens=64)
    assert fitted.dropped > 0
    assert fitted.messages[0].content == "You are terse."
    assert fitted.messages[-1].content.startswith("And finally")
    assert fitted.prompt_tokens is not None and fitted.prompt_tokens + 64 <= 512


def test_a_question_longer_than_the_window_is_refused(ctx: AppContext) -> None:
    model = loaded(ctx.registry, "smollm2-135m-instruct@onnx")

    def count(messages: object) -> int:
        return model.count_tokens(model.render_prompt(messages))  # type: ignore[arg-type]

    with pytest.raises(PromptTooLongError, match="window is 64"):
        fit_to_window([Message("user", "word " * 200)], count, context_window=64, max_new_tokens=16)


def test_prepare_trims_and_says_so(ctx: AppContext) -> None:
    options = GenerationOptions(temperature=0, max_new_tokens=8000)
    prepared = ctx.chat.preview("smollm2-135m-instruct@onnx", long_conversation(3), options)
    assert "tokens are left in the window" in prepared.notice
    assert prepared.options.max_new_tokens + (prepared.prompt_tokens or 0) == 8192
    assert prepared.dropped == 0, "history is kept while a quarter of the window is free for the answer"


def test_show_prompt_is_the_templated_text(ctx: AppContext) -> None:
    prompt, tokens = ctx.chat.render_prompt(
        "smollm2-135m-instruct@onnx", [Message("system", "S"), Message("user", "Hello there")]
    )
    assert "<|im_start|>user\nHello there<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    assert tokens is not None and tokens > 5
