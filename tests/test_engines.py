"""Both local engines on the embedded model: answers, streaming, options, stop sequences, finish reasons."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from playground.context import AppContext
from playground.options import GenerationOptions
from playground.types import Chunk, FinishReason, Message, Metrics
from tests.support import QUESTION, loaded

ENGINES = ["smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"]
GREEDY = GenerationOptions(temperature=0, max_new_tokens=48)


def collect(chunks: list[Chunk]) -> tuple[str, Metrics]:
    metrics = [c.metrics for c in chunks if c.metrics is not None]
    assert len(metrics) == 1 and chunks[-1].metrics is metrics[0], "metrics come once, last"
    return "".join(c.text for c in chunks), metrics[0]


@pytest.mark.parametrize("model_id", ENGINES)
def test_greedy_answer_names_paris(ctx: AppContext, model_id: str) -> None:
    model = loaded(ctx.registry, model_id)
    text, metrics = collect(list(model.stream([Message("user", QUESTION)], GREEDY)))
    assert "Paris" in text
    assert metrics.finish_reason == FinishReason.STOP
    assert metrics.prompt_tokens > 10 and 3 < metrics.completion_tokens < 48
    assert metrics.ttft_s is not None and 0 < metrics.ttft_s < metrics.total_s
    assert metrics.tokens_per_s is not None and metrics.tokens_per_s > 0


def test_onnx_stream_equals_non_streamed_greedy(in_process: Callable[..., Any]) -> None:
    """The streamed deltas add up to what the engine produces in one go."""
    import onnxruntime_genai as og

    model = in_process(ENGINES[0])
    messages = [Message("user", "Name three colours.")]
    streamed, _ = collect(list(model.stream(messages, GREEDY)))
    tokens = model._tokenizer.encode(model.render_prompt(messages))
    params = og.GeneratorParams(model._model)
    params.set_search_options(do_sample=False, max_length=len(tokens) + 48)
    generator = og.Generator(model._model, params)
    generator.append_tokens(tokens)
    while not generator.is_done():
        generator.generate_next_token()
    whole = model._tokenizer.decode(generator.get_sequence(0)[len(tokens) :])
    assert streamed.strip() == whole.replace("<|im_end|>", "").strip()


def test_transformers_stream_equals_non_streamed_greedy(in_process: Callable[..., Any]) -> None:
    model = in_process(ENGINES[1])
    messages = [Message("user", "Name three colours.")]
    streamed, _ = collect(list(model.stream(messages, GREEDY)))
    tok = model._tokenizer
    inputs = tok(model.render_prompt(messages), return_tensors="pt", add_special_tokens=False)
    out = model._model.generate(**inputs, max_new_tokens=48, do_sample=False, pad_token_id=tok.pad_token_id)
    whole = tok.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert streamed == whole


@pytest.mark.parametrize("model_id", ENGINES)
def test_max_new_tokens_gives_length(ctx: AppContext, model_id: str) -> None:
    model = loaded(ctx.registry, model_id)
    options = GenerationOptions(temperature=0, max_new_tokens=5)
    _, metrics = collect(
        list(model.stream([Message("user", "Tell me a long story about a dragon.")], options))
    )
    assert metrics.completion_tokens == 5
    assert metrics.finish_reason == FinishReason.LENGTH


@pytest.mark.parametrize("model_id", ENGINES)
def test_stop_sequence_cuts_the_answer(ctx: AppContext, model_id: str) -> None:
    model = loaded(ctx.registry, model_id)
    options = GenerationOptions(temperature=0, max_new_tokens=48, stop=("Paris",))
    text, metrics = collect(list(model.stream([Message("user", QUESTION)], options)))
    assert "Paris" not in text and text.startswith("The capital of France is")
    assert metrics.finish_reason == FinishReason.STOP
    assert metrics.completion_tokens < 20


@pytest.mark.parametrize("model_id", ENGINES)
def test_seed_makes_sampling_repeatable(ctx: AppContext, model_id: str) -> None:
    model = loaded(ctx.registry, model_id)
    messages = [Message("user", "Write one sentence about the sea.")]

    def sample(seed: int) -> str:
        options = GenerationOptions(temperature=1.2, top_p=0.95, top_k=50, max_new_tokens=24, seed=seed)
        return collect(list(model.stream(messages, options)))[0]

    assert sample(7) == sample(7)
    assert len({sample(1), sample(2), sample(3)}) > 1


@pytest.mark.parametrize("model_id", ENGINES)
def test_system_prompt_reaches_the_template(ctx: AppContext, model_id: str) -> None:
    model = loaded(ctx.registry, model_id)
    prompt = model.render_prompt([Message("system", "Be brief."), Message("user", "Hi")])
    assert "Be brief." in prompt and prompt.index("Be brief.") < prompt.index("Hi")
    assert prompt.rstrip().endswith("assistant")
    assert model.count_tokens(prompt) > 5
