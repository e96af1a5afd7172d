"""A run's figures: per model its score (the share of checked items it passed) with a 95% bootstrap
interval and per category, its speed and memory measured the same way for every model, the judge's
grades; across models, a Bradley–Terry ranking from their answers compared item by item (the checks,
or the judge's verdicts in `compare` mode); and how far the judge agrees with the checks and with the
Arena's human votes on the same prompts, so a visitor can see whether to trust it."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..arena.ratings import Outcome, Table, table
from ..history import HistoryStore
from ..history.evals import EvalResultRow, EvalRunRow

BOOTSTRAP_ROUNDS = 1000


@dataclass(frozen=True)
class ModelScore:
    model: str
    answered: int
    checked: int
    passed: int
    score: float | None  # passed / checked
    ci: tuple[float, float] | None  # 95% bootstrap interval of the score
    categories: dict[str, float]
    ttft_p50: float | None
    ttft_p95: float | None
    prompt_tokens_per_s: float | None
    tokens_per_s: float | None
    load_s: float | None
    peak_memory_bytes: int | None
    memory: str  # "worker (measured)", "in-process (the catalog's estimate)" or "remote"
    variant: str = ""
    file_hash: str = ""
    judge_score: float | None = None  # the share of answers the judge passed (grade mode)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.model, "variant": self.variant, "file_hash": self.file_hash, "answered": self.answered,
            "checked": self.checked, "passed": self.passed, "score": self.score,
            "ci": None if self.ci is None else list(self.ci), "categories": self.categories,
            "ttft_s": {"p50": self.ttft_p50, "p95": self.ttft_p95},
            "prompt_tokens_per_s": self.prompt_tokens_per_s, "tokens_per_s": self.tokens_per_s,
            "load_s": self.load_s, "peak_memory_bytes": self.peak_memory_bytes, "memory": self.memory,
            "judge_score": self.judge_score,
        }  # fmt: skip


@dataclass(frozen=True)
class Agreement:
    """How often the judge says what the checks (or the human voters) say: a share, over `count`."""

    checks: float | None = None
    checks_count: int = 0
    humans: float | None = None
    humans_count: int = 0


@dataclass(frozen=True)
class Report:
    run: EvalRunRow
    models: list[ModelScore]
    ranking: Table  # Bradley–Terry over the item-by-item comparisons
    ranked_by: str  # "checks" or "judge"
    agreement: Agreement = field(default_factory=Agreement)
    results: list[EvalResultRow] = field(default_factory=list)

    @property
    def best(self) -> str | None:
        scored = [m for m in self.models if m.score is not None]
        return max(scored, key=lambda m: m.score or 0.0).model if scored else None

    @property
    def fastest(self) -> str | None:
        timed = [m for m in self.models if m.tokens_per_s]
        return max(timed, key=lambda m: m.tokens_per_s or 0.0).model if timed else None


def report(store: HistoryStore, owner: str, run_id: str, *, seed: int = 0) -> Report:
    run = store.evals.get_run(owner, run_id)
    results = store.evals.results(owner, run_id)
    facts = store.evals.model_facts(owner, run_id)
    categories = [str(i.get("category") or "") for i in run.items]
    scores = [
        _model_score(m, [r for r in results if r.model == m], categories, facts.get(m, {}), seed)
        for m in run.models
    ]
    pairs = store.evals.pairs(owner, run_id)
    ranked_by = "judge" if pairs else "checks"
    outcomes = _judged(pairs) if pairs else _checked(results, run.models)
    agreement = _agreement(results, pairs, run, store)
    return Report(run, scores, table(outcomes, rounds=200, seed=seed), ranked_by, agreement, results)


def _model_score(
    model: str,
    results: Sequence[EvalResultRow],
    categories: Sequence[str],
    facts: dict[str, object],
    seed: int,
) -> ModelScore:
    checked = [r for r in results if r.verdict is not None]
    passes = [1.0 if (r.verdict or {}).get("passed") else 0.0 for r in checked]
    by_category: dict[str, list[float]] = {}
    for result, passed in zip(checked, passes, strict=True):
        by_category.setdefault(categories[result.item] or "(none)", []).append(passed)
    ttfts = [float(r.metrics["ttft_s"]) for r in results if r.metrics.get("ttft_s") is not None]
    rates = [float(r.metrics["tokens_per_s"]) for r in results if r.metrics.get("tokens_per_s")]
    prompt_rates = [
        float(r.metrics["prompt_tokens"]) / float(r.metrics["ttft_s"])
        for r in results
        if r.metrics.get("prompt_tokens") and r.metrics.get("ttft_s")
    ]
    grades = [r.judge.get("grade") for r in results if r.judge and "grade" in r.judge]
    return ModelScore(
        model,
        answered=len(results),
        checked=len(checked),
        passed=int(sum(passes)),
        score=sum(passes) / len(passes) if passes else None,
        ci=bootstrap_interval(passes, seed=seed) if passes else None,
        categories={c: sum(v) / len(v) for c, v in by_category.items()},
        ttft_p50=_percentile(ttfts, 50),
        ttft_p95=_percentile(ttfts, 95),
        prompt_tokens_per_s=statistics.median(prompt_rates) if prompt_rates else None,
        tokens_per_s=statistics.median(rates) if rates else None,
        load_s=_float(facts.get("load_s")),
        peak_memory_bytes=int(facts["peak_memory_bytes"]) if facts.get("peak_memory_bytes") else None,  # type: ignore[call-overload]
        memory=str(facts.get("memory", "")),
        variant=str(facts.get("variant", "")),
        file_hash=str(facts.get("file_hash", "")),
        judge_score=(sum(g == "pass" for g in grades) / len(grades)) if grades else None,
    )


def bootstrap_interval(
    values: Sequence[float], *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> tuple[float, float]:
    """The 95% interval of the mean over `rounds` resamples of the items (seeded: the same run gives
    the same interval)."""
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), (rounds, len(data)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not math.isnan(value) else None


def _checked(results: Sequence[EvalResultRow], models: Sequence[str]) -> list[Outcome]:
    """Per item, each pair of models: a win for the one whose answer passed its check when the other's
    did not, a tie when both did or neither."""
    passed = {(r.model, r.item): bool(r.verdict.get("passed")) for r in results if r.verdict is not None}
    items = sorted({item for _, item in passed})
    outcomes = []
    for item in items:
        present = [m for m in models if (m, item) in passed]
        for i, a in enumerate(present):
            for b in present[i + 1 :]:
                pa, pb = passed[a, item], passed[b, item]
                outcomes.append(Outcome(a, b, 0.5 if pa == pb else (1.0 if pa else 0.0)))
    return outcomes


def _judged(pairs: Sequence[tuple[int, str, str, str]]) -> list[Outcome]:
    return [Outcome(a, b, {"a": 1.0, "b": 0.0}.get(verdict, 0.5)) for _, a, b, verdict in pairs]


def _agreement(
    results: Sequence[EvalResultRow],
    pairs: Sequence[tuple[int, str, str, str]],
    run: EvalRunRow,
    store: HistoryStore,
) -> Agreement:
    """The judge against the checks (its grades, or its verdicts where exactly one answer passed) and
    against human votes on the same prompts and models."""
    passed = {(r.model, r.item): bool(r.verdict.get("passed")) for r in results if r.verdict is not None}
    said: list[bool] = []
    for r in results:
        grade = (r.judge or {}).get("grade")
        if grade in ("pass", "fail") and (r.model, r.item) in passed:
            said.append((grade == "pass") == passed[r.model, r.item])
    for item, a, b, verdict in pairs:
        if (a, item) in passed and (b, item) in passed and passed[a, item] != passed[b, item]:
            said.append(verdict == ("a" if passed[a, item] else "b"))
    humans = _human_agreement(pairs, run, store)
    return Agreement(
        sum(said) / len(said) if said else None,
        len(said),
        sum(humans) / len(humans) if humans else None,
        len(humans),
    )


def _human_agreement(
    pairs: Sequence[tuple[int, str, str, str]], run: EvalRunRow, store: HistoryStore
) -> list[bool]:
    """Each human vote (the Arena's, anyone's) on an item's prompt between two models the judge
    compared: does the judge's verdict match it (a tie or "both bad" against a judge's tie)?"""
    if not pairs:
        return []
    prompts = {index: str(item["prompt"]) for index, item in enumerate(run.items)}
    verdicts = {(prompts[i], a, b): v for i, a, b, v in pairs}
    matches = []
    for prompt, model_a, model_b, vote in store.battles.votes_on(list(prompts.values())):
        human = {"a": "a", "b": "b"}.get(vote, "tie")
        if (prompt, model_a, model_b) in verdicts:
            matches.append(verdicts[prompt, model_a, model_b] == human)
        elif (prompt, model_b, model_a) in verdicts:
            judged = {"a": "b", "b": "a", "tie": "tie"}[verdicts[prompt, model_b, model_a]]
            matches.append(judged == human)
    return matches
