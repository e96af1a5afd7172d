"""The one answer pipeline: the only way anything in the playground gets an answer from a model.

Like simonw/llm's `Response`, one object owns a question's execution, and callers only draw its events:

    answer = ctx.answers.ask(Request(model, messages, options, record=Recording(history.conversations, owner, conversation_id)))
    for event in answer:   # Waiting..., Started, Text / Experts..., Finished (always last)
        ...

In order: resolve the model (refused at once when unknown or not ready), lease it (loading it first,
within the memory budget: a leased model is never evicted, so a request waiting in a provider's line
keeps its model), prepare the request (sampling defaults, images checked, the conversation fitted to the
window), take a place in the provider's line (PLAYGROUND_PROVIDER_CONCURRENCY), stream, and record the
answer as it streams. The stop signal of the answer's (session, pane) is taken when the answer is asked
and given back when it ends, however the consumer leaves. `Finished` carries the finish reason, and it is
the one the history stores, in every path: `stop`/`length` from the engine, `cancelled` when Stop was
pressed (or the consumer left) at any point, `interrupted` when the engine's process or the connection
died, `error` with the message otherwise.

The chat tabs, `/chat`, each arena side, `python -m playground chat` and `compare`, and the benchmarks
all come here; nothing else records an answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from .branching import Branch, branch_options
from .chat import ChatService, Prepared
from .errors import HistoryError, PlaygroundError, ProviderError, StoppedError
from .history import AnswerRecorder, ConversationStore
from .moe_view import pack
from .options import GenerationOptions
from .providers.guard import guarded_stream
from .public.concurrency import ProviderSlots, Ticket
from .registry import Lease
from .stops import StopSignals
from .structured import ResponseFormat
from .types import Chunk, ExpertRecord, FinishReason, Message, Metrics, ModelSpec, TokenRecord

log = logging.getLogger(__name__)

SLOT_POLL_S = 0.25  # how often a request waiting in a provider's line looks at its stop signal


# What a caller asks


@dataclass(frozen=True)
class Recording:
    """Where an answer is kept: a conversation of a history (`store`: its conversations), and how it is
    labelled there.

    `model`/`engine`: the names written with the answer (None: the model's own id and provider; "" hides
    them, as a blind arena side until its vote). `parameters`: stored beside the options as sent (the
    arena's system prompt). `refusal`: a request refused before it streams is still written, as an empty
    answer with finish reason `error` (the arena's sides: a round needs both answers).

    `question`: writes the question when the request is accepted (just before its answer's row), so a
    refused question (an image or a prompt over a limit, a missing model) is never stored; it returns
    the conversation's id (`conversation_id` is then None for a new conversation), or None to keep
    nothing (a full history in public mode)."""

    store: ConversationStore
    owner: str
    conversation_id: str | None
    model: str | None = None
    engine: str | None = None
    parameters: Mapping[str, object] = field(default_factory=dict)
    refusal: bool = False
    question: Callable[[], str | None] | None = None


@dataclass(frozen=True)
class Request:
    """One question to one model. `owner`: whose place in a provider's line (a session, or one arena
    side of it); `stop`: the (session, pane) whose Stop button ends it; `record`: None writes nothing;
    `branch`: the answer is continued from these tokens (branching.py) instead of begun."""

    model: str
    messages: Sequence[Message]
    options: GenerationOptions = field(default_factory=GenerationOptions)
    provider: str | None = None
    api_key: str | None = None  # a visitor's own key, for this request only (cloud models)
    owner: str | None = None
    stop: tuple[str | None, str] | None = None
    record: Recording | None = None
    branch: Branch | None = None


# What a caller draws


@dataclass(frozen=True)
class Waiting:
    """Nothing streams yet, and this says why (the model loads, the provider's line is full)."""

    notice: str


@dataclass(frozen=True)
class Started:
    """The request as it goes to the engine: the model, the prompt's tokens, the options as sent
    (the model's sampling defaults and the window applied) and what was changed to fit, in words;
    `message_id`: the answer's row in the history (None: not kept)."""

    spec: ModelSpec
    prompt_tokens: int | None
    options: GenerationOptions
    notice: str = ""
    message_id: str | None = None


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Experts:
    """One generated token's routing in a mixture-of-experts model (never part of the text)."""

    record: ExpertRecord


@dataclass(frozen=True)
class Tokens:
    """One generated token's probability and its alternatives (the token view; never part of the
    text), when the request asked for them (`options.logprobs`) and the provider gives them."""

    record: TokenRecord


@dataclass(frozen=True)
class Finished:
    """Always the last event. `metrics.finish_reason` is what the history stores; `error` says why an
    answer failed (empty otherwise); metrics of a stopped answer are measured here (estimated)."""

    metrics: Metrics
    error: str = ""

    @property
    def reason(self) -> FinishReason:
        return self.metrics.finish_reason


Event = Waiting | Started | Text | Experts | Tokens | Finished


class Answer:
    """An answer being produced: iterate it for its events; `stop()` ends it at the next token (the
    engine stops too) and it still ends with `Finished`; `close()` abandons it (recorded as cancelled).

    `watch(fn)` calls `fn` with each event as it is drawn, and with the `Finished` of an answer closed
    before its end (a caller keeping a view of it, like the arena's sides, sees every end)."""

    def __init__(
        self,
        events: Callable[[Answer], Generator[Event, None, None]],
        stop: threading.Event,
        release: Callable[[], None],
    ) -> None:
        self.stop_event = stop
        self.finished: Finished | None = None
        self._release = release
        self._watchers: list[Callable[[Event], None]] = []
        self._events = events(self)

    def __iter__(self) -> Answer:
        return self

    def __next__(self) -> Event:
        event = next(self._events)
        self._seen(event)
        return event

    def watch(self, watcher: Callable[[Event], None]) -> None:
        self._watchers.append(watcher)

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        self.stop_event.set()
        self._events.close()
        self.release()  # an answer never started gives its stop signal back here

    def release(self) -> None:
        """Give the answer's stop signal back (idempotent): nothing can stop it any more."""
        self._release()

    def abandoned(self, finished: Finished) -> None:
        """From the pipeline: the consumer left before the end, which was recorded as this."""
        if self.finished is None:
            self._seen(finished)

    def _seen(self, event: Event) -> None:
        if isinstance(event, Finished):
            self.finished = event
        for watcher in self._watchers:
            watcher(event)


@dataclass
class Result:
    """An answer drawn to its end (`AnswerService.complete`): for the CLI, compare, tests, benchmarks."""

    text: str = ""
    metrics: Metrics = field(default_factory=lambda: Metrics(finish_reason=FinishReason.ERROR))
    error: str = ""
    spec: ModelSpec | None = None
    notice: str = ""
    experts: list[ExpertRecord] = field(default_factory=list)
    tokens: list[TokenRecord] = field(default_factory=list)

    def take(self, event: Event) -> None:
        if isinstance(event, Text):
            self.text += event.text
        elif isinstance(event, Experts):
            self.experts.append(event.record)
        elif isinstance(event, Tokens):
            self.tokens.append(event.record)
        elif isinstance(event, Started):
            self.spec, self.notice = event.spec, event.notice
        elif isinstance(event, Finished):
            self.metrics, self.error = event.metrics, event.error

    @property
    def reason(self) -> FinishReason:
        return self.metrics.finish_reason


# The pipeline


class AnswerService:
    """Asks models for answers, records them, and stops them; knows nothing about Gradio."""

    def __init__(
        self,
        chat: ChatService,
        *,
        provider_concurrency: Mapping[str, int] | None = None,
        signals: StopSignals | None = None,
    ) -> None:
        self.chat = chat
        self.registry = chat.registry
        self.slots = ProviderSlots(provider_concurrency or {})
        self.signals = signals or StopSignals()

    def ask(self, request: Request) -> Answer:
        """The answer to `request`, as events; nothing happens until the first is drawn."""
        session, pane = request.stop or (None, "")
        stop = self.signals.begin(session, pane) if request.stop else threading.Event()

        def release() -> None:
            if request.stop:
                self.signals.end(session, stop, pane)

        return Answer(lambda answer: self._events(request, answer), stop, release)

    def complete(self, request: Request, on_text: Callable[[str], None] | None = None) -> Result:
        """The whole answer (Ctrl-C in the caller's thread stops it and keeps what arrived)."""
        result = Result()
        answer = self.ask(request)
        try:
            for event in answer:
                result.take(event)
                if on_text is not None and isinstance(event, Text):
                    on_text(event.text)
        finally:
            answer.close()
        return result

    def stop(self, session: str | None, panes: str | Sequence[str] = "") -> bool:
        """Stop the answers streaming in these panes of the session (the engine stops at its next token)."""
        return self.signals.stop(session, panes)

    # Inside

    def _events(self, request: Request, answer: Answer) -> Generator[Event, None, None]:
        run = _Run(request.record, answer.stop_event, request.options.response_format, request.branch)
        try:
            finished = yield from self._answer(request, run)
            yield finished  # after the model's lease and the provider's slot are given back
        except StoppedError:
            yield run.end(None)
        except PlaygroundError as exc:
            log.info("%s: %s", type(exc).__name__, exc)
            yield run.end(None, error=str(exc))
        except Exception as exc:  # a bug of ours: recorded as an error, then left to the caller's own
            run.end(None, error=f"unexpected {type(exc).__name__}: {exc}")  # handler (the CLI's one line
            raise  # and its log file, Gradio's error): nothing here hides it
        finally:
            if not run.ended:  # closed before its end: what arrived is kept, as cancelled
                answer.abandoned(run.end(None))
            answer.release()

    def _answer(self, request: Request, run: _Run) -> Generator[Event, None, Finished]:
        spec = self.chat.resolve(request.model, request.provider, has_key=bool(request.api_key))
        self.chat.check(spec, request.messages)  # refused before anything loads
        options = request.options
        if request.branch is not None:
            options = branch_options(spec, options, request.branch)
        loading = self.chat.loading_notice(spec)
        if loading:
            yield Waiting(f"⏳ {loading}")
        began = time.perf_counter()
        with self.registry.lease(spec, stop=run.stop) as lease:
            try:
                prepared = self.chat.prepare(lease.model, request.messages, options, request.api_key)
            except ProviderError:  # the engine failed on the request (its chat template, say): an answer
                run.record(spec, options)  # that failed, kept and shown as one, not a refusal
                yield Started(spec, None, options, message_id=run.message_id)
                raise
            notice = prepared.notice
            if loading:
                notice = (
                    f"{prepared.spec.name} loaded in {time.perf_counter() - began:.1f} s. {notice}".strip()
                )
            run.record(prepared.spec, prepared.options, prepared.prompt_tokens)
            yield Started(prepared.spec, prepared.prompt_tokens, prepared.options, notice, run.message_id)
            ticket = self.slots.ticket(prepared.spec.provider, request.owner)
            try:
                if ticket is not None and not (yield from _wait_in_line(ticket, run.stop)):
                    return run.end(None)
                return (yield from self._stream(lease, prepared, run))
            finally:
                if ticket is not None:
                    ticket.release()

    def _stream(self, lease: Lease, prepared: Prepared, run: _Run) -> Generator[Event, None, Finished]:
        run.started = time.perf_counter()
        metrics: Metrics | None = None
        yield from run.given()
        stream = _engine_stream(lease, prepared, run.stop)
        try:
            for chunk in stream:
                yield from run.take(chunk)
                metrics = chunk.metrics or metrics
                if run.stop.is_set() and metrics is None:
                    break
        except PlaygroundError as exc:
            return run.end(None, error=str(exc))
        finally:
            stream.close()  # Stop: the engine's own cleanup runs now
        return run.end(metrics)


def _engine_stream(lease: Lease, prepared: Prepared, stop: threading.Event) -> Generator[Chunk, None, None]:
    """The engine's stream: through the lease (which takes the model's worker), or, for a request with
    a visitor's own key, from the (guarded) copy of the remote model that carries it."""
    if prepared.model is not lease.model:
        return guarded_stream(prepared.spec, prepared.model.stream(prepared.messages, prepared.options))
    return lease.stream(prepared.messages, prepared.options, stop=stop)


def _wait_in_line(ticket: Ticket, stop: threading.Event) -> Generator[Event, None, bool]:
    """A notice each time the ticket's place in its provider's line changes; True once it is granted,
    False when `stop` is set first (the ticket then leaves the line)."""
    shown: int | None = None
    while not ticket.wait(SLOT_POLL_S):
        if stop.is_set():
            return False
        ahead = -1 if ticket.held_by_owner() else ticket.ahead()  # -1: behind its owner's other answer
        if ahead != shown:
            shown = ahead
            yield Waiting(_line_notice(ticket.provider, ahead))
    return not stop.is_set()


def _line_notice(provider: str, ahead: int) -> str:
    if ahead < 0:
        return (
            f"⏳ Waiting for your other answer on {provider} to end: one answer per visitor at a time on a "
            "busy provider."
        )
    return (
        f"⏳ Waiting for a free slot on {provider}: {ahead} question(s) ahead of yours; answers start in "
        "the order they were asked."
    )


class _Run:
    """One answer's own state: its clock, what arrived, and its row in the history (if it is kept)."""

    def __init__(
        self,
        target: Recording | None,
        stop: threading.Event,
        response_format: ResponseFormat | None = None,
        branch: Branch | None = None,
    ) -> None:
        self.target = target
        self.stop = stop
        self.response_format = response_format  # checked at the end, and the check kept with the metrics
        self.branch = branch
        self.began = time.perf_counter()
        self.started: float | None = None
        self.first: float | None = None
        self.pieces = 0
        self.text = ""
        self.experts: list[ExpertRecord] = []
        self.tokens: list[TokenRecord] = []
        self.offset = 0  # added to the index of the engine's records (a branch's given tokens come first)
        self.recorder: AnswerRecorder | None = None
        self.prompt_tokens = 0
        self.ended = False

    def record(self, spec: ModelSpec, options: GenerationOptions, prompt_tokens: int | None = None) -> None:
        """Start the answer's row: the options as sent, the model as the target names it."""
        self.prompt_tokens = prompt_tokens or 0
        target = self.target
        if target is None:
            return
        conversation_id = target.question() if target.question is not None else target.conversation_id
        if conversation_id is None:
            return
        branch = self.branch
        self.recorder = target.store.start_answer(
            target.owner,
            conversation_id,
            model=spec.id if target.model is None else target.model,
            engine=spec.provider if target.engine is None else target.engine,
            parameters=options.model_dump(mode="json", exclude={"answer_prefix"}) | dict(target.parameters),
            branch_at=None if branch is None else branch.at,
        )

    @property
    def message_id(self) -> str | None:
        return None if self.recorder is None else self.recorder.message_id

    def given(self) -> Iterator[Event]:
        """A branch's given tokens' records (and expert records), before the engine's, which are
        numbered after them; its text comes from the engine, which decodes the given tokens first."""
        if self.branch is None:
            return
        for record in self.branch.tokens:
            yield from self.take(Chunk(tokens=record))
        for expert in self.branch.experts:
            yield from self.take(Chunk(experts=expert))
        self.offset = len(self.branch.tokens)

    def take(self, chunk: Chunk) -> Iterator[Event]:
        if chunk.text:
            self.first = self.first or time.perf_counter()
            self.pieces += 1
            self.text += chunk.text
            if self.recorder is not None:
                self.recorder.update(self.text)
            yield Text(chunk.text)
        if chunk.experts is not None:
            experts = replace(chunk.experts, index=chunk.experts.index + self.offset)
            self.experts.append(experts)
            yield Experts(experts)
        if chunk.tokens is not None:
            tokens = replace(chunk.tokens, index=chunk.tokens.index + self.offset)
            self.tokens.append(tokens)
            yield Tokens(tokens)

    def end(self, metrics: Metrics | None, *, error: str = "") -> Finished:
        """The answer's end, recorded: the engine's metrics, else this run's own (a stopped answer)."""
        self.ended = True
        if error:
            metrics = self._measured(FinishReason.ERROR)
        elif metrics is None:
            metrics = self._measured(
                FinishReason.CANCELLED if self.stop.is_set() else FinishReason.INTERRUPTED
            )
        if self.response_format is not None and not error:
            fmt = self.response_format
            metrics = replace(metrics, checked=fmt.describe(fmt.check(self.text)))
        self._write(metrics, error)
        return Finished(metrics, error)

    def _measured(self, reason: FinishReason) -> Metrics:
        now = time.perf_counter()
        start = self.started or self.began
        rate = None
        if self.first is not None and self.pieces > 1 and now > self.first:
            rate = (self.pieces - 1) / (now - self.first)
        return Metrics(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.pieces,
            ttft_s=None if self.first is None else self.first - start,
            tokens_per_s=rate,
            total_s=now - start,
            finish_reason=reason,
            estimated=True,
        )

    def _write(self, metrics: Metrics, error: str) -> None:
        """Record the end; a failed write is logged (the row keeps no finish reason, and the next start
        marks it interrupted), never raised into the answer."""
        try:
            if self.recorder is None and error and self.target is not None and self.target.refusal:
                self._refused(error)
            elif self.recorder is not None and not self.recorder.finished:
                self._save_experts()
                self._save_tokens()
                self.recorder.finish(metrics.to_dict() | ({"error": error} if error else {}), text=self.text)
        except HistoryError as exc:
            log.warning("Could not record the end of an answer: %s", exc)

    def _refused(self, error: str) -> None:
        """A request refused before it streamed, kept as an empty `error` answer (an arena side)."""
        target = self.target
        if target is None or target.conversation_id is None:
            return
        target.store.add_message(
            target.owner,
            target.conversation_id,
            "assistant",
            "",
            model=target.model if target.model is not None else "",
            engine=target.engine if target.engine is not None else "",
            metrics={"finish_reason": "error", "error": error},
            finish_reason="error",
        )

    def _save_tokens(self) -> None:
        """The token view's records go with the answer; a failed write loses them, never the answer."""
        if not self.tokens or self.recorder is None:
            return
        try:
            self.recorder.save_tokens([record.to_dict() for record in self.tokens])
        except HistoryError as exc:
            log.warning("Could not save the token view of answer %s: %s", self.recorder.message_id, exc)

    def _save_experts(self) -> None:
        """The expert map goes with the answer; a failed write loses the map, never the answer."""
        if not self.experts or self.recorder is None:
            return
        try:
            self.recorder.save_experts(pack(self.experts))
        except HistoryError as exc:
            log.warning("Could not save the expert map of answer %s: %s", self.recorder.message_id, exc)
