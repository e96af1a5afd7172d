"""Every failure a user can meet, against a real socket server: each with its own actionable message."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from playground.catalog import load_catalog
from playground.errors import (
    AuthError,
    ContextOverflowError,
    ModelNotFoundError,
    PlaygroundError,
    PromptTooLongError,
    ProviderTimeoutError,
    RateLimitError,
    RetiredError,
    ServerError,
    UnreachableError,
)
from playground.providers.base import ChatModel
from playground.providers.cloud import CloudProvider, RetryPolicy
from playground.providers.cloud.failures import ErrorContext, translate
from playground.providers.cloud.presets import cloud_endpoints
from playground.settings import Settings
from playground.types import FinishReason
from playground.ui.render import metrics_line
from tests.cloud.conftest import free_port
from tests.cloud.fake_server import FakeServer
from tests.cloud.helpers import ASK, GREEDY, answer, served_model

Build = Callable[..., CloudProvider]
KEY = "sk-test-0123456789abcdef"


def _model(provider: Build, fake: FakeServer, scenario: str, **env: str) -> ChatModel:
    """Model `m1` on an OpenAI-compatible endpoint playing `scenario`."""
    cloud = provider("openai-compatible", OPENAI_BASE_URL=fake.url(scenario), OPENAI_API_KEY=KEY, **env)
    return served_model(cloud, "m1")


def _fails(model: ChatModel, error: type[PlaygroundError]) -> PlaygroundError:
    with pytest.raises(error) as caught:
        answer(model)
    return caught.value


def test_401_names_the_variable_and_never_the_key(provider: Build, fake: FakeServer) -> None:
    error = _fails(_model(provider, fake, "s401"), AuthError)
    assert "OPENAI_API_KEY" in str(error) and "(401)" in str(error)
    assert KEY not in str(error), "the server echoed the key; the message must not"
    assert "***" in str(error) and error.status == 401


def test_403_says_the_key_may_not_use_this_model(provider: Build, fake: FakeServer) -> None:
    error = _fails(_model(provider, fake, "s403"), AuthError)
    assert "does not allow this model for the key in OPENAI_API_KEY (403)" in str(error)


def test_404_lists_what_the_endpoint_has(provider: Build, fake: FakeServer) -> None:
    error = _fails(_model(provider, fake, "s404"), ModelNotFoundError)
    assert "has no model or deployment 'm1' (404)" in str(error)
    assert "It has: alpha, beta." in str(error)
    assert [r.path for r in fake.requests("s404")][-1] == "/v1/models", "the list was asked for afresh"


def test_410_of_a_retired_service_names_the_date(
    cloud_settings: Callable[..., Settings], fake: FakeServer
) -> None:
    settings = cloud_settings(PLAYGROUND_GITHUB_MODELS="1", GITHUB_TOKEN=KEY)
    github = next(e for e in cloud_endpoints(settings) if e.name == "github")
    cloud = CloudProvider(
        github.model_copy(update={"base_url": fake.url("github")}), settings=settings, catalog=load_catalog()
    )
    spec = next(s for s in cloud.specs() if s.id == "phi-4-mini@github")
    error = _fails(cloud.load(spec), RetiredError)
    assert str(error) == (
        "GitHub Models was retired on 2026-07-30 (410): it no longer answers. "
        "Pick another provider; this one is kept for reference only."
    )
    assert fake.requests("github")[-1].body["model"] == "microsoft/Phi-4-mini-instruct"


def test_410_of_a_model_says_it_is_gone(provider: Build, fake: FakeServer) -> None:
    error = _fails(_model(provider, fake, "s410"), RetiredError)
    assert "'m1' is gone (410)" in str(error) and "retirement brownout" in str(error)


def test_413_and_context_overflow_are_too_long_errors(provider: Build, fake: FakeServer) -> None:
    for scenario in ("s413", "ctx"):
        error = _fails(_model(provider, fake, scenario), ContextOverflowError)
        assert isinstance(error, PromptTooLongError), "the chat service treats both alike"
        assert "too long for 'm1'" in str(error) and "Start a new conversation" in str(error)
    assert "maximum context length is 4096" in str(error)


def test_429_is_retried_after_retry_after_then_streams(provider: Build, fake: FakeServer) -> None:
    scenario = "r429~once"
    model = _model(provider, fake, scenario)
    started = time.monotonic()
    text, metrics = answer(model)
    waited = time.monotonic() - started
    assert text == "The capital of France is Paris." and metrics.finish_reason == FinishReason.STOP
    assert len(fake.requests(scenario)) == 2, "one 429, then one success"
    assert waited >= 0.9, "Retry-After: 1 was honoured"


def test_429_retries_are_bounded(provider: Build, fake: FakeServer) -> None:
    scenario = "r429x~bounded"
    retry = RetryPolicy(attempts=2, max_wait_s=5)
    cloud = provider("openai-compatible", retry=retry, OPENAI_BASE_URL=fake.url(scenario), OPENAI_API_KEY=KEY)
    error = _fails(served_model(cloud, "m1"), RateLimitError)
    assert len(fake.requests(scenario)) == 3, "the first try and two retries, no more"
    assert "quota or rate limit reached for 'm1' (429)" in str(error) and "Try again in 1 s" in str(error)


def test_a_long_retry_after_is_not_waited_for(provider: Build, fake: FakeServer) -> None:
    scenario = "q429~long"
    started = time.monotonic()
    error = _fails(_model(provider, fake, scenario), RateLimitError)
    assert time.monotonic() - started < 5
    assert len(fake.requests(scenario)) == 1
    assert isinstance(error, RateLimitError) and error.retry_after == 3600
    assert "Try again in 3600 s" in str(error)


def test_500_is_a_server_error(provider: Build, fake: FakeServer) -> None:
    error = _fails(_model(provider, fake, "s500"), ServerError)
    assert "failed with 500: Internal failure" in str(error) and error.status == 500


def test_a_server_that_never_answers_times_out(provider: Build, fake: FakeServer) -> None:
    started = time.monotonic()
    error = _fails(_model(provider, fake, "hang", PLAYGROUND_TIMEOUT_S="1"), ProviderTimeoutError)
    assert time.monotonic() - started < 10
    assert "did not answer within 1 s (PLAYGROUND_TIMEOUT_S)" in str(error)


def test_a_stream_that_hangs_midway_keeps_the_partial_answer(provider: Build, fake: FakeServer) -> None:
    model = _model(provider, fake, "hangmid", PLAYGROUND_TIMEOUT_S="1")
    text, metrics = answer(model)
    assert text == "The capital of France"
    assert metrics.finish_reason == FinishReason.INTERRUPTED
    assert "did not answer within 1 s (PLAYGROUND_TIMEOUT_S)" in metrics.note, "a timeout says it timed out"
    shown = metrics_line({"metrics": metrics.to_dict(), "finish": "interrupted"})
    assert "interrupted: " in shown and "did not answer within 1 s" in shown and "engine died" not in shown


def test_a_dropped_connection_keeps_the_partial_answer_marked_interrupted(
    provider: Build, fake: FakeServer
) -> None:
    text, metrics = answer(_model(provider, fake, "drop"))
    assert text == "The capital of France"
    assert metrics.finish_reason == FinishReason.INTERRUPTED
    assert metrics.estimated, "no usage came: the counts are ours"


def test_a_stream_that_ends_without_a_finish_reason_is_interrupted_not_done(
    provider: Build, fake: FakeServer
) -> None:
    text, metrics = answer(_model(provider, fake, "eof"))
    assert text == "The capital of France"
    assert metrics.finish_reason == FinishReason.INTERRUPTED


def test_connection_refused_at_ollama_says_how_to_start_it(provider: Build) -> None:
    port = free_port()  # bound then released: nothing listens there
    cloud = provider("ollama", OLLAMA_HOST=f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"
    expected = f"Ollama not reachable at {url}: is `ollama serve` running?"
    spec = next(s for s in cloud.specs() if s.id == "phi-4-mini@ollama")
    assert cloud.availability(spec).reason == expected.rstrip(".")
    assert cloud.status().reachable is False and cloud.status().error == expected
    with pytest.raises(UnreachableError) as caught:
        answer(cloud.load(spec))
    assert str(caught.value) == expected


def test_a_missing_key_fails_at_call_time_naming_the_variable(provider: Build, fake: FakeServer) -> None:
    cloud = provider("nvidia", NVIDIA_BASE_URL=fake.url("nvidia~nokey"))
    spec = next(s for s in cloud.specs() if s.id == "phi-4-mini@nvidia")
    state = cloud.availability(spec)
    assert not state.available and state.needs_key
    assert state.reason == "set NVIDIA_API_KEY (in the environment or .env)"
    model = cloud.load(spec)  # a visitor may still bring a key: loading does not refuse
    error = _fails(model, AuthError)
    assert "set NVIDIA_API_KEY" in str(error)
    assert fake.requests("nvidia~nokey") == [], "nothing was sent without a key"


def test_an_old_server_that_rejects_stream_options_is_asked_again_without(
    provider: Build, fake: FakeServer
) -> None:
    scenario = "noopts~a"
    text, metrics = answer(_model(provider, fake, scenario))
    bodies = [r.body for r in fake.requests(scenario)]
    assert [("stream_options" in b) for b in bodies] == [True, False]
    assert text.endswith("Paris.") and metrics.estimated


def test_an_unknown_host_names_the_variable_to_check() -> None:
    import socket

    import httpx2

    ctx = ErrorContext(
        provider="p", label="My server", url="http://gpu-box:8000/v1", url_env="OPENAI_BASE_URL"
    )
    cause = httpx2.ConnectError("[Errno -2] Name or service not known")
    cause.__cause__ = socket.gaierror(-2, "Name or service not known")
    error = translate(cause, ctx)
    assert isinstance(error, UnreachableError)
    assert str(error) == "My server: cannot find the host of http://gpu-box:8000/v1 (check OPENAI_BASE_URL)."


def test_stop_closes_the_connection_so_the_server_stops_sending(provider: Build, fake: FakeServer) -> None:
    scenario = "slow~stop"
    stream = _model(provider, fake, scenario).stream(ASK, GREEDY)
    seen = [next(stream).text for _ in range(3)]
    stream.close()  # what Gradio does on Stop
    deadline = time.monotonic() + 10
    while scenario not in fake.gave_up and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen == ["word "] * 3
    assert fake.gave_up.get(scenario, 999) < 60, "the server noticed the hang-up within a few words"


def test_a_visitors_refused_key_is_called_theirs(provider: Build, fake: FakeServer) -> None:
    model = _model(provider, fake, "s401").with_api_key("sk-visitor-typed")  # type: ignore[attr-defined]
    error = _fails(model, AuthError)
    assert "refused the key you entered (401)" in str(error) and "sk-visitor-typed" not in str(error)
    assert "leave the key field empty to use OPENAI_API_KEY" in str(error)


def test_a_hanging_model_list_gives_up_quickly_naming_its_own_setting(
    provider: Build, fake: FakeServer
) -> None:
    cloud = provider(
        "openai-compatible", OPENAI_BASE_URL=fake.url("hang~list"), PLAYGROUND_DISCOVERY_TIMEOUT_S="0.5"
    )
    started = time.monotonic()
    status = cloud.status()
    assert time.monotonic() - started < 5
    assert status.reachable is False and status.models == ()
    assert "did not answer within 0.5 s (PLAYGROUND_DISCOVERY_TIMEOUT_S)" in status.error
    cloud.specs()
    assert len(fake.requests("hang~list")) == 1, "the failure is cached until refresh()"
    cloud.refresh()
    assert len(fake.requests("hang~list")) == 2
