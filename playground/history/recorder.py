"""Crash-safe recording of one streaming answer: written at once, then at most once a second, then ended.

A chat handler uses it like this (the conversations part makes it: `ConversationStore.start_answer`):

    conversations = store.conversations
    conversations.add_message(owner, conversation_id, "user", question)   # before generating
    with conversations.start_answer(owner, conversation_id, model=..., parameters=...) as recorder:
        for chunk in chunks:
            text += chunk.text
            recorder.update(text)                                          # cheap: throttled
            if chunk.metrics is not None:
                recorder.finish(chunk.metrics)                             # stop or length, with metrics
            yield text

Leaving the block ends an answer not finished yet: "cancelled" when the generator is closed (Stop,
GeneratorExit) or on Ctrl-C, "error" on any other exception (the text so far is kept), "stop" otherwise.
Without the `with`, call `recorder.fail()` in `except` and `recorder.close()` in `finally`.
A process killed mid-answer leaves the row without a finish reason; `Database.recover_interrupted`
marks it "interrupted" at the next start. No Gradio here; every method may be called from any thread.

It writes through `AnswerSink`, the three methods it needs, and imports nothing of the store: the store
makes recorders, so a recorder that knew the store would make an import cycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Protocol

from ..errors import HistoryError
from ..types import FinishReason, Metrics

log = logging.getLogger(__name__)


class AnswerSink(Protocol):
    """Where a recorder writes one answer (the history's conversations part is one)."""

    def update_message_text(self, owner: str, message_id: str, text: str) -> None: ...

    def finish_message(
        self,
        owner: str,
        message_id: str,
        *,
        finish_reason: FinishReason | str,
        metrics: Metrics | Mapping[str, object] | None = None,
        text: str | None = None,
    ) -> None: ...

    def save_experts(self, owner: str, message_id: str, experts: Mapping[str, object]) -> None: ...

    def save_tokens(self, owner: str, message_id: str, tokens: Sequence[Mapping[str, object]]) -> None: ...


class AnswerRecorder:
    """Writes one assistant message as it streams; at most one write per `interval_s`, the first at once."""

    def __init__(
        self,
        sink: AnswerSink,
        owner: str,
        message_id: str,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.owner = owner
        self.message_id = message_id
        self.interval_s = interval_s
        self.text = ""
        self.writes = 0
        self.finish_reason: FinishReason | None = None
        self._clock = clock
        self._saved: str | None = None
        self._last_write: float | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = self.finish_reason or "streaming"
        return f"<AnswerRecorder {self.message_id} {state} chars={len(self.text)} writes={self.writes}>"

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def update(self, text: str) -> bool:
        """The whole answer so far; written when the interval has passed since the last write."""
        with self._lock:
            if self.finished:
                return False
            self.text = text
            now = self._clock()
            if self._last_write is not None and now - self._last_write < self.interval_s:
                return False
            return self._save(now)

    def append(self, delta: str) -> bool:
        """Add a delta to the answer so far (same throttle as update)."""
        return self.update(self.text + delta)

    def flush(self) -> bool:
        """Write the answer so far now, whatever the interval."""
        with self._lock:
            return False if self.finished else self._save(self._clock())

    def _save(self, now: float) -> bool:
        if self.text == self._saved:
            return False
        self.sink.update_message_text(self.owner, self.message_id, self.text)
        self._saved, self._last_write = self.text, now
        self.writes += 1
        return True

    def finish(
        self,
        metrics: Metrics | Mapping[str, object] | None = None,
        finish_reason: FinishReason | str | None = None,
        *,
        text: str | None = None,
    ) -> None:
        """End the answer with its final text, metrics and finish reason (taken from metrics when not given).

        Only the first call counts, so a `finally: recorder.close()` after it changes nothing.
        """
        with self._lock:
            if self.finished:
                return
            if text is not None:
                self.text = text
            reason = finish_reason or _reason_of(metrics) or FinishReason.STOP
            self.sink.finish_message(
                self.owner, self.message_id, finish_reason=reason, metrics=metrics, text=self.text
            )
            self._saved, self.finish_reason = self.text, FinishReason(reason)
            self.writes += 1

    def save_experts(self, experts: Mapping[str, object]) -> None:
        """Keep the answer's expert routing (moe_view.pack's form) with it, for its map."""
        self.sink.save_experts(self.owner, self.message_id, experts)

    def save_tokens(self, tokens: Sequence[Mapping[str, object]]) -> None:
        """Keep each generated token's probability and alternatives with the answer (the token view)."""
        self.sink.save_tokens(self.owner, self.message_id, tokens)

    def cancel(self, metrics: Metrics | Mapping[str, object] | None = None) -> None:
        """The user stopped the answer: keep the text, mark it cancelled."""
        self.finish(metrics, FinishReason.CANCELLED)

    def fail(self, metrics: Metrics | Mapping[str, object] | None = None) -> None:
        """Generation failed: keep the text, mark it error."""
        self.finish(metrics, FinishReason.ERROR)

    def close(self) -> None:
        """From a finally block: an answer not finished by now was stopped (the generator was closed)."""
        self._end_quietly(FinishReason.CANCELLED)

    def _end_quietly(self, reason: FinishReason) -> None:
        """End the answer while another exception is leaving: a failed write is logged, not raised.

        The row then keeps no finish reason, and the next start marks it interrupted.
        """
        try:
            self.finish(None, reason)
        except HistoryError as exc:
            log.warning("Could not record the end of answer %s: %s", self.message_id, exc)

    def __enter__(self) -> AnswerRecorder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """No error: stop; GeneratorExit or Ctrl-C: cancelled; any other exception: error."""
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, GeneratorExit | KeyboardInterrupt):
            self._end_quietly(FinishReason.CANCELLED)
        else:
            self._end_quietly(FinishReason.ERROR)


def _reason_of(metrics: Metrics | Mapping[str, object] | None) -> str | None:
    if isinstance(metrics, Metrics):
        return str(metrics.finish_reason)
    if isinstance(metrics, Mapping):
        value = metrics.get("finish_reason")
        return str(value) if value else None
    return None
