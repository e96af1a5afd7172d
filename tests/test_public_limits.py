"""The rules behind public mode's door, one by one: addresses, admission, prompt length."""

from __future__ import annotations

import pytest
from gradio_client import Client

from playground.answers import AnswerService, Request
from playground.chat import ChatService
from playground.context import AppContext
from playground.errors import PromptTooLongError
from playground.options import GenerationOptions
from playground.public.address import UNKNOWN, client_address
from playground.public.admission import WINDOW_S, Admission, AdmissionRefused, Job
from playground.settings import Limits
from playground.types import Message

ONNX = "smollm2-135m-instruct@onnx"
PROXY = [("X-Forwarded-For", "6.6.6.6, 203.0.113.7")]  # a forged first entry, then what our proxy added


@pytest.mark.parametrize(
    ("headers", "peer", "trusted", "expected"),
    [
        (PROXY, "10.0.0.2", True, "203.0.113.7"),  # the right-most entry: the one our proxy wrote
        (PROXY, "10.0.0.2", False, "10.0.0.2"),  # not behind a trusted proxy: the header is ignored
        ([("x-forwarded-for", "2001:db8::1")], "10.0.0.2", True, "2001:db8::1"),
        ([("x-forwarded-for", "[2001:db8::1]:443")], None, True, "2001:db8::1"),
        ([("x-forwarded-for", "not an address")], "10.0.0.2", True, "10.0.0.2"),
        ([], "127.0.0.1", True, "127.0.0.1"),
        ([("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "5.5.5.5")], "10.0.0.2", True, "5.5.5.5"),
        ([], None, False, UNKNOWN),
    ],
)
def test_the_client_address(
    headers: list[tuple[str, str]], peer: str | None, trusted: bool, expected: str
) -> None:
    assert client_address(headers, peer, trust_forwarded=trusted) == expected


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_answer_per_session_and_pane() -> None:
    admission = Admission(Limits())
    running = [Job("s1", "a", "instruct")]
    with pytest.raises(AdmissionRefused, match="already being written here"):
        admission.admit("s1", "a", "instruct", running, 0)
    admission.admit("s1", "a", "vision", running, 0)  # another tab of the same visitor
    admission.admit("s2", "a", "instruct", running, 0)  # another visitor
    admission.admit("s1", "a", None, running, 0)  # the API has no pane


def test_the_rate_window_slides_and_says_when_to_come_back() -> None:
    clock = Clock()
    admission = Admission(Limits(rate_per_minute=2), clock)
    admission.admit("s", "a", None, [], 0)
    clock.now += 20
    admission.admit("s", "a", None, [], 0)
    clock.now += 10
    with pytest.raises(AdmissionRefused, match=r"try again in 30 s") as refused:
        admission.admit("s", "a", None, [], 0)
    assert refused.value.retry_after_s == 30
    clock.now += 30.5  # the first question left the window
    admission.admit("s", "a", None, [], 0)
    clock.now += 10 * WINDOW_S
    admission.admit("other", "b", None, [], 0)
    for _ in range(300):  # the sweep forgets keys whose window is empty: memory stays bounded
        admission.admit(None, "b", None, [], 0)
    assert admission.tracked() <= 2


def test_the_bounded_queue_refuses_with_a_message() -> None:
    admission = Admission(Limits(queue_size=3))
    admission.admit("s", "a", None, [], 2)
    with pytest.raises(AdmissionRefused, match="The playground is busy: 3 questions are waiting"):
        admission.admit("s", "a", None, [], 3)


def test_a_refused_question_is_not_counted() -> None:
    admission = Admission(Limits(visitor_jobs=1, rate_per_minute=2))
    with pytest.raises(AdmissionRefused):
        admission.admit("s", "a", None, [Job("s", "a", None)], 0)
    admission.admit("s", "a", None, [], 0)
    admission.admit("s", "a", None, [], 0)  # the refusal did not use up the rate


def test_a_question_longer_than_the_limit_is_refused_before_anything_loads(ctx: AppContext) -> None:
    chat = ChatService(ctx.registry, prompt_chars=100)
    model = ctx.registry.resolve(ONNX)
    long = [Message("system", "s" * 60), Message("user", "q" * 41)]
    with pytest.raises(PromptTooLongError, match=r"101 characters \(with the system prompt\).*at most 100"):
        chat.preview(model.id, long, GenerationOptions())
    fits = chat.preview(
        model.id, [Message("system", "s" * 60), Message("user", "q" * 40)], GenerationOptions()
    )
    assert fits.messages[-1].content == "q" * 40
    # earlier turns do not count: the window trims them
    turns = [Message("user", "x" * 90), Message("assistant", "y" * 90), Message("user", "short")]
    assert chat.preview(model.id, turns, GenerationOptions()).messages[-1].content == "short"


def test_the_api_says_the_prompt_is_too_long(ctx: AppContext) -> None:
    from tests.test_public_admission import public_app

    previous, ctx.chat.prompt_chars = ctx.chat.prompt_chars, 50  # as PLAYGROUND_PROMPT_CHARS=50 does
    try:
        with public_app(ctx) as url, pytest.raises(Exception, match="this playground takes at most 50"):
            Client(url, verbose=False).predict("z" * 51, api_name="/chat")
    finally:
        ctx.chat.prompt_chars = previous


def test_a_longer_answer_than_the_limit_is_lowered_to_it_with_a_notice(ctx: AppContext) -> None:
    """PLAYGROUND_MAX_NEW_TOKENS (public default 512): the real engine stops at the cap."""
    chat = ChatService(ctx.registry, max_new_tokens=12)
    question = [Message("user", "Write a long story about a lighthouse keeper.")]
    prepared = chat.preview(ONNX, question, GenerationOptions(temperature=0, max_new_tokens=400))
    assert prepared.options.max_new_tokens == 12
    assert "Answers here are at most 12 new tokens" in prepared.notice
    result = AnswerService(chat).complete(
        Request(ONNX, question, GenerationOptions(temperature=0, max_new_tokens=400))
    )
    assert result.metrics.completion_tokens == 12 and "at most 12 new tokens" in result.notice
    within = chat.preview(ONNX, question, GenerationOptions(max_new_tokens=8))
    assert within.options.max_new_tokens == 8 and "at most" not in within.notice
    assert Limits.from_env({}, public=True).max_new_tokens == 512
    assert Limits.from_env({}, public=False).max_new_tokens is None
