"""The provider protocol and the pieces every adapter shares: timing and stop sequences."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..options import GenerationOptions
from ..types import (
    Availability,
    Chunk,
    ExpertRecord,
    Finish,
    FinishReason,
    Message,
    Metrics,
    ModelSpec,
    TokenRecord,
)


@runtime_checkable
class ChatModel(Protocol):
    """A loaded model: streams text deltas, then one chunk with metrics."""

    spec: ModelSpec

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Iterator[Chunk]: ...

    def render_prompt(self, messages: Sequence[Message]) -> str | None:
        """The exact text the engine receives after the chat template, where it is known."""
        ...

    def count_tokens(self, text: str) -> int | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class WorkerInfo:
    """What the Models tab shows of one worker process."""

    pid: int
    memory_bytes: int
    load_s: float
    threads: int | None
    busy: bool


@runtime_checkable
class WorkerPool(Protocol):
    """A model whose answers run in worker processes of its own, one answer per worker at a time.

    The registry's scheduler owns the decisions: how many workers a pool has, and when one more may
    start (the memory budget). A pool only does what it is asked, called outside the scheduler's lock,
    and never asks back: so nothing it does can wait on another model.
    """

    spec: ModelSpec
    max_workers: int

    def run(
        self,
        messages: Sequence[Message],
        options: GenerationOptions,
        *,
        start: bool = False,
        stop: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        """The answer on an idle worker (waiting for one to be free), or on a new worker started for it
        (`start`: the scheduler has room for one). `stop` set while waiting: no chunks."""
        ...

    def workers_lost(self) -> int:
        """How many workers this pool has lost so far (died, killed, or failed to start): a running
        total, so that whoever reads it can tell what changed since."""
        ...

    def worker_bytes(self) -> int:
        """The resident memory of its largest live worker (0 when it has none)."""
        ...

    def memory_bytes(self) -> int:
        """Its live workers' resident memory together."""
        ...

    def describe(self) -> list[WorkerInfo]: ...


class Provider(Protocol):
    """An engine or API family: lists its models, says whether each is usable, loads them."""

    name: str

    def specs(self) -> list[ModelSpec]: ...

    def availability(self, spec: ModelSpec) -> Availability: ...

    def load(self, spec: ModelSpec) -> ChatModel: ...


# Optional behaviours: small named protocols a model or provider may also implement.


@runtime_checkable
class CountsPrompt(Protocol):
    """A model whose engine counts a whole prompt, images included (its processor expands each image)."""

    def count_prompt(self, messages: Sequence[Message]) -> int | None: ...


@runtime_checkable
class TakesKey(Protocol):
    """A model that can be asked with a visitor's own key, for one request (cloud endpoints)."""

    def with_api_key(self, key: str) -> ChatModel: ...


@dataclass(frozen=True)
class Forced:
    """A text fed through a model token by token (teacher forcing): its token ids and each token's text,
    and at every position the model's log-probabilities for the next token (`logprobs`: a float32 numpy
    array, [len(ids), vocabulary]; row t predicts ids[t + 1]) and the text of its most likely one.
    `total`: the text's tokens before it was cut to the limit."""

    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    logprobs: Any
    top: tuple[str, ...]
    total: int


@runtime_checkable
class ScoresText(Protocol):
    """A model that can be fed a given text and say, at each position, how likely each next token was
    (local engines: one forward pass over the text, no sampling). `limit`: at most this many tokens."""

    def teacher_forced(self, text: str, limit: int) -> Forced: ...


@runtime_checkable
class HasFolders(Protocol):
    """A provider whose models are files on this machine (ONNX Runtime GenAI): where each one lies."""

    def folder(self, spec: ModelSpec) -> Path: ...


def timed(events: Iterator[str | ExpertRecord | TokenRecord | Finish]) -> Iterator[Chunk]:
    """Turn an engine's deltas and final Finish into Chunks, measuring time to first token and rate.

    The decode rate counts the tokens after the first over the time after the first, so it does not
    mix prompt processing into it. An ExpertRecord passes through in a chunk of its own with no text;
    a TokenRecord rides in the chunk of its token's text (in one of its own when that text is empty);
    neither counts as the first token.
    """
    start = time.perf_counter()
    first: float | None = None
    pending: TokenRecord | None = None  # a token's record rides with its text (one message, not two)
    try:
        for event in events:
            if pending is not None and not (isinstance(event, str) and event):
                yield Chunk(tokens=pending)  # its token shows no text yet (half a character, a stop)
                pending = None
            if isinstance(event, ExpertRecord):
                yield Chunk(experts=event)
                continue
            if isinstance(event, TokenRecord):
                pending = event
                continue
            if isinstance(event, Finish):
                end = time.perf_counter()
                yield Chunk(metrics=_metrics(event, start, first, end))
                return
            if event:
                if first is None:
                    first = time.perf_counter()
                yield Chunk(text=event, tokens=pending)
                pending = None
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # Stop: the engine's own cleanup runs now, not when garbage is collected


def _metrics(finish: Finish, start: float, first: float | None, end: float) -> Metrics:
    rate = None
    if first is not None and finish.completion_tokens > 1 and end > first:
        rate = (finish.completion_tokens - 1) / (end - first)
    return Metrics(
        prompt_tokens=finish.prompt_tokens,
        completion_tokens=finish.completion_tokens,
        ttft_s=None if first is None else first - start,
        tokens_per_s=rate,
        total_s=end - start,
        finish_reason=finish.finish_reason,
        estimated=finish.estimated,
        note=finish.note,
    )


class StopMatcher:
    """Cuts a stream of text at the first stop sequence, holding back what could begin one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self.stops), default=1) - 1
        self._buffer = ""
        self.hit = False

    def push(self, text: str) -> str:
        """Add text; return what may be shown now. Sets `hit` when a stop sequence appears."""
        if not self.stops:
            return text
        self._buffer += text
        cut = min((i for i in (self._buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.hit = True
            out, self._buffer = self._buffer[:cut], ""
            return out
        keep = self._held_suffix()
        out = self._buffer[: len(self._buffer) - keep]
        self._buffer = self._buffer[len(self._buffer) - keep :]
        return out

    def flush(self) -> str:
        out, self._buffer = self._buffer, ""
        return out

    def _held_suffix(self) -> int:
        """Length of the longest tail of the buffer that is a prefix of some stop sequence."""
        tail = self._buffer[-self._hold :] if self._hold else ""
        for size in range(len(tail), 0, -1):
            piece = tail[-size:]
            if any(s.startswith(piece) for s in self.stops):
                return size
        return 0


def finish_reason_for(last_token: int | None, eos: Sequence[int], produced: int, limit: int) -> FinishReason:
    """Why a local engine stopped: an end-of-sequence token, or the token limit."""
    if last_token is not None and last_token in eos:
        return FinishReason.STOP
    return FinishReason.LENGTH if produced >= limit else FinishReason.STOP
