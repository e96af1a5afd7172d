"""Evaluation runs: every item of a prompt set through every model, each an answer of the one answer
pipeline (answers.py), checked as it ends and kept in the history as it goes.

A run takes its models one after the other (one model's items together: it loads once, and its speed
and memory are its own, not shared with another model answering beside it), measures each model the
same way (load time, time to first token, prompt and decode rates, peak memory of its worker), and
then, when a judge is named, has the judge grade each answer against the item (`grade`) or compare
each pair of answers twice with the positions swapped (`compare`: a verdict that changes with the
order is a tie). Stop ends the answer streaming now and the run; a stopped or interrupted run goes on
with `run` again (the Evaluate tab's Continue, `eval --resume`): only the items not yet answered are
asked, and nothing is scored twice.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..answers import AnswerService, Request, Result
from ..errors import InvalidOptionsError, PlaygroundError
from ..history import HistoryStore
from ..history.evals import EvalResultRow, EvalRunRow
from ..options import GenerationOptions
from ..settings import EvalLimits
from ..stops import StopSignals
from ..types import FinishReason, Message, ModelSpec
from .card import files_hash
from .checks import Verdict, check
from .sets import EvalItem, PromptSet

PANE = "evaluate"  # the Stop pane of a visitor's run (its answers' too)
JUDGE_MODES = ("grade", "compare")
JUDGE_OPTIONS = GenerationOptions(temperature=0, max_new_tokens=24)
ANSWERED = (FinishReason.STOP, FinishReason.LENGTH, FinishReason.ERROR)  # kept: the others are asked again
GRADE = (
    "You grade an answer to a question. Reply with one word, PASS or FAIL, then one short reason.\n\n"
    "Question: {prompt}\n{expected}Answer: {answer}"
)
COMPARE = (
    "Two answers to one question. Which is better? Reply with one word: A, B or TIE.\n\n"
    "Question: {prompt}\n\nAnswer A: {a}\n\nAnswer B: {b}"
)


@dataclass(frozen=True)
class Judge:
    model: str
    mode: str = "grade"

    def to_dict(self) -> dict[str, str]:
        return {"model": self.model, "mode": self.mode}


@dataclass(frozen=True)
class Progress:
    """What a run did last: an answer kept (its model, item, text and check), or its end (`status`)."""

    done: int
    total: int
    model: str = ""
    item: int = -1
    text: str = ""
    verdict: Verdict | None = None
    note: str = ""
    status: str = "running"


class EvalService:
    """Starts, runs, stops and continues evaluation runs; knows nothing about Gradio."""

    def __init__(
        self,
        answers: AnswerService,
        store: HistoryStore,
        *,
        limits: EvalLimits | None = None,
        in_process: bool = False,
    ) -> None:
        self.answers = answers
        self.registry = answers.registry
        self.store = store
        self.limits = limits or EvalLimits()
        self.in_process = in_process  # local engines in the app's process: memory is the catalog's estimate
        self.signals = StopSignals()

    # Starting

    def start(
        self,
        owner: str,
        models: Sequence[str],
        prompt_set: PromptSet,
        options: GenerationOptions,
        judge: Judge | None = None,
        *,
        fewest: int = 2,
    ) -> EvalRunRow:
        """A new run: its models resolved (refused when unknown or not ready, before anything is kept),
        its set and settings within this deployment's limits. `fewest`: the models a comparison needs
        (a benchmark of the evaluation itself runs one)."""
        if not self.limits.enabled:
            raise InvalidOptionsError("Evaluation is turned off on this deployment (PLAYGROUND_EVAL=0).")
        specs = self._specs(models, fewest)
        if judge is not None:
            if judge.mode not in JUDGE_MODES:
                raise InvalidOptionsError(f"A judge grades or compares: mode {judge.mode!r} is neither.")
            judge = Judge(self.answers.chat.resolve(judge.model).id, judge.mode)
        items = prompt_set.items[: self.limits.items] if self.limits.items else prompt_set.items
        if self.limits.max_new_tokens is not None and options.max_new_tokens > self.limits.max_new_tokens:
            options = options.model_copy(update={"max_new_tokens": self.limits.max_new_tokens})
        return self.store.evals.create_run(
            owner,
            set_name=prompt_set.name,
            set_hash=prompt_set.digest,
            items=[i.to_dict() for i in items],
            models=[s.id for s in specs],
            options=options.model_dump(mode="json"),
            judge=None if judge is None else judge.to_dict(),
        )

    def _specs(self, models: Sequence[str], fewest: int) -> list[ModelSpec]:
        chosen = list(dict.fromkeys(m for m in models if m and m.strip()))
        if not fewest <= len(chosen) <= self.limits.models:
            raise InvalidOptionsError(
                f"Pick {fewest} to {self.limits.models} different models to evaluate (got {len(chosen)})."
            )
        return [self.answers.chat.resolve(m) for m in chosen]

    # Running

    def run(self, owner: str, run_id: str, *, session: str | None = None) -> Iterator[Progress]:
        """Ask what the run has not answered yet, keeping each result as it comes; then the judge."""
        run = self.store.evals.get_run(owner, run_id)
        items = [EvalItem.model_validate(i) for i in run.items]
        options = GenerationOptions.model_validate(run.options)
        stop = self.signals.begin(session, PANE)
        self.store.evals.set_status(owner, run_id, "running")
        total = len(items) * len(run.models)
        answered = {(r.model, r.item) for r in self.store.evals.results(owner, run_id)}
        status = "done"
        try:
            for model in run.models:
                todo = [i for i in range(len(items)) if (model, i) not in answered]
                if not todo or stop.is_set():
                    continue
                yield from self._model(
                    owner, run, model, items, todo, options, (session, stop), len(answered), total
                )
                answered |= {
                    (r.model, r.item) for r in self.store.evals.results(owner, run_id) if r.model == model
                }
            if stop.is_set():
                status = "stopped"
            elif run.judge:
                yield from self._judge(owner, run, items, Judge(**run.judge), stop)
                status = "stopped" if stop.is_set() else "done"
        except BaseException:
            status = "stopped" if stop.is_set() else "interrupted"
            raise
        finally:
            self.signals.end(session, stop, PANE)
            self.store.evals.set_status(owner, run_id, status)
        yield Progress(len(answered), total, status=status)

    def _model(
        self,
        owner: str,
        run: EvalRunRow,
        model: str,
        items: Sequence[EvalItem],
        todo: Sequence[int],
        options: GenerationOptions,
        stopping: tuple[str | None, threading.Event],
        done: int,
        total: int,
    ) -> Iterator[Progress]:
        """One model's items not answered yet, after its load (timed)."""
        session, stop = stopping
        spec = self.answers.chat.resolve(model)
        facts = self._load(spec)
        self.store.evals.set_model_facts(owner, run.id, model, facts)
        peak = 0
        for index in todo:
            if stop.is_set():
                return
            result = self._ask(owner, model, items[index], options, session)
            if result.reason not in ANSWERED:  # stopped, or cut short: asked again when the run goes on
                if result.reason == FinishReason.CANCELLED:
                    stop.set()
                yield Progress(done, total, model, index, result.text, note=f"not kept: {result.reason}")
                continue
            verdict = check(items[index], result.text) if not result.error else Verdict(False, result.error)
            metrics = result.metrics.to_dict() | ({"error": result.error} if result.error else {})
            if self.store.evals.add_result(
                owner, run.id, model=model, item=index, text=result.text, finish_reason=str(result.reason),
                metrics=metrics, verdict=None if verdict is None else verdict.to_dict(),
            ):  # fmt: skip
                done += 1
            peak = max(peak, self.registry.memory_bytes(model) if spec.local else 0)
            yield Progress(done, total, model, index, result.text, verdict)
        if spec.local:
            self.store.evals.set_model_facts(owner, run.id, model, {"peak_memory_bytes": peak})

    def _ask(
        self, owner: str, model: str, item: EvalItem, options: GenerationOptions, session: str | None
    ) -> Result:
        messages = [Message("system", item.system)] if item.system else []
        messages.append(Message("user", item.prompt))
        request = Request(model, messages, options, owner=f"eval/{owner}", stop=(session, PANE))
        return self.answers.complete(request)

    def _load(self, spec: ModelSpec) -> dict[str, object]:
        """The model loaded (if it was not), and what the run reports of it: load time, memory kind,
        variant, its files' hash."""
        facts: dict[str, object] = {"variant": f"{spec.engine_label}: {spec.source or spec.id}"}
        if not spec.local:
            return facts | {"memory": "remote", "file_hash": "n/a", "load_s": None}
        try:
            with self.registry.lease(spec):
                pass
        except PlaygroundError as exc:  # the answers will say so, one by one
            return facts | {"memory": "unknown", "load_error": str(exc)}
        folder = self.registry.folder(spec)
        return facts | {
            "load_s": self.registry.load_seconds(spec.id),
            "memory": "in-process (the catalog's estimate)" if self.in_process else "worker (measured)",
            "file_hash": files_hash(folder) if folder is not None else "unknown",
        }

    # The judge

    def _judge(
        self, owner: str, run: EvalRunRow, items: Sequence[EvalItem], judge: Judge, stop: threading.Event
    ) -> Iterator[Progress]:
        results = self.store.evals.results(owner, run.id)
        if judge.mode == "grade":
            for result in results:
                if stop.is_set():
                    return
                if result.judge is None:
                    grade = self._grade(judge, items[result.item], result)
                    self.store.evals.set_judge(owner, run.id, result.model, result.item, grade)
                    yield Progress(
                        len(results), len(results), result.model, result.item, note=f"judge: {grade['grade']}"
                    )
            return
        judged = {(i, a, b) for i, a, b, _ in self.store.evals.pairs(owner, run.id)}
        by_item: dict[int, dict[str, str]] = {}
        for result in results:
            by_item.setdefault(result.item, {})[result.model] = result.text
        for index, answers in sorted(by_item.items()):
            for a, b in itertools.combinations([m for m in run.models if m in answers], 2):
                if stop.is_set():
                    return
                if (index, a, b) not in judged:
                    verdict, detail = self._compare(judge, items[index], answers[a], answers[b])
                    self.store.evals.add_pair(owner, run.id, index, a, b, verdict, detail)
                    yield Progress(len(results), len(results), f"{a} vs {b}", index, note=f"judge: {verdict}")

    def _grade(self, judge: Judge, item: EvalItem, result: EvalResultRow) -> dict[str, object]:
        expected = f"Expected: {item.expected}\n" if item.expected not in (None, "", []) else ""
        said = self._verdict_of(
            judge, GRADE.format(prompt=item.prompt, expected=expected, answer=result.text)
        )
        found = re.search(r"\b(PASS|FAIL)\b", said.upper())
        return {"grade": found.group(1).lower() if found else "unclear", "said": said[:300]}

    def _compare(
        self, judge: Judge, item: EvalItem, first: str, second: str
    ) -> tuple[str, dict[str, object]]:
        """Asked twice, the positions swapped: a verdict that follows the position is a tie."""
        said = [
            self._verdict_of(judge, COMPARE.format(prompt=item.prompt, a=first, b=second)),
            self._verdict_of(judge, COMPARE.format(prompt=item.prompt, a=second, b=first)),
        ]
        picks = [_pick(text) for text in said]
        swapped = {"a": "b", "b": "a", "tie": "tie", "unclear": "unclear"}[picks[1]]
        verdict = picks[0] if picks[0] == swapped and picks[0] in ("a", "b") else "tie"
        return verdict, {"said": [s[:300] for s in said], "picks": picks}

    def _verdict_of(self, judge: Judge, prompt: str) -> str:
        result = self.answers.complete(Request(judge.model, [Message("user", prompt)], JUDGE_OPTIONS))
        return result.text if not result.error else f"(the judge failed: {result.error})"

    def stop(self, session: str | None) -> bool:
        """Stop the visitor's run: the answer streaming now, and the run after it."""
        stopped = self.signals.stop(session, PANE)
        return self.answers.stop(session, PANE) or stopped


def _pick(text: str) -> str:
    found = re.search(r"\b(A|B|TIE)\b", text.upper())
    return found.group(1).lower() if found else "unclear"


def last(progress: Iterator[Progress]) -> Progress:
    """Run to the end; the last progress (its status)."""
    seen = [Progress(0, 0)]
    for step in progress:
        seen[0] = step
    return seen[0]
