"""What the Evaluate tab shows, from a run's report only: the table of models, the chart of score
against speed (marker size: peak memory), the ranking beside the Arena's, the judge's agreement, every
answer. Every figure comes from a model that ran here; nothing is drawn for a model that did not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..arena.ratings import leaderboard
from ..history.evals import EvalResultRow, EvalRunRow
from ..history.records import RatedBattle
from ..settings import Settings
from .render import safe_markdown

MODEL_HEADERS = [
    "Model",
    "Score (95% CI)",
    "Checked",
    "TTFT p50 / p95",
    "Prompt tok/s",
    "Decode tok/s",
    "Load",
    "Peak memory",
    "Judge",
]
RANKING_HEADERS = ["Model", "This run (Bradley–Terry)", "Arena's human votes", "Arena games"]
ITEM_HEADERS = ["Model", "#", "Category", "Check", "Why", "Answer"]


def intro(settings: Settings) -> str:
    limits = settings.eval_limits
    text = (
        "Ask several models the same prompts and compare them on **your** questions and **this** machine: "
        "each answer is checked (exact, contains, a number, a choice, a pattern, JSON against a schema), a "
        "judge model can grade them, and every model's time to first token, speed, load time and memory are "
        "measured the same way. Runs are kept: a stopped one continues where it stopped."
    )
    if not limits.enabled:
        return text + "\n\n⛔ Evaluation is turned off on this deployment."
    if settings.public:
        text += (
            f"\n\nOn this public deployment a run takes at most {limits.models} models, "
            f"{limits.items or 'all'} items and {limits.max_new_tokens or 'unlimited'} new tokens per answer."
        )
    return text


def progress_line(step: Any) -> str:
    if step.item < 0:
        return f"Run {step.status}: {step.done} of {step.total} answers kept."
    mark = "" if step.verdict is None else (" ✓" if step.verdict.passed else " ✗")
    note = f" ({step.note})" if step.note else ""
    return safe_markdown(
        f"⏳ {step.done} / {step.total} answered · last: `{step.model}` #{step.item + 1}{mark}{note}"
    )


def status_line(report: Any) -> str:
    run = report.run
    answered = len(report.results)
    total = len(run.items) * len(run.models)
    marks = []
    if report.best:
        marks.append(f"best score: `{report.best}`")
    if report.fastest:
        marks.append(f"fastest: `{report.fastest}`")
    action = " Continue asks the rest." if run.status in ("stopped", "interrupted") else ""
    return safe_markdown(
        f"**{run.set_name}**: {answered} of {total} answers, {run.status}. " + " · ".join(marks) + action
    )


def model_rows(report: Any) -> list[list[Any]]:
    rows = []
    for m in report.models:
        score = "–" if m.score is None else f"{m.score:.0%} ({m.ci[0]:.0%}–{m.ci[1]:.0%})"
        ttft = "–" if m.ttft_p50 is None else f"{m.ttft_p50 * 1000:.0f} / {(m.ttft_p95 or 0) * 1000:.0f} ms"
        memory = m.memory if not m.peak_memory_bytes else f"{m.peak_memory_bytes / 1e6:,.0f} MB, {m.memory}"
        judge = "–" if m.judge_score is None else f"{m.judge_score:.0%} passed"
        name = (
            m.model + (" 🏆" if m.model == report.best else "") + (" ⚡" if m.model == report.fastest else "")
        )
        rows.append([name, score, f"{m.passed}/{m.checked}", ttft, _num(m.prompt_tokens_per_s), _num(m.tokens_per_s),
                     _num(m.load_s, " s"), memory, judge])  # fmt: skip
    return rows


def chart(report: Any) -> Any:
    """Score against decode rate, each model a marker sized by its peak memory (remote: the smallest)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.6), layout="constrained")
    axes = figure.subplots()
    drawn = [m for m in report.models if m.score is not None and m.tokens_per_s]
    biggest = max((m.peak_memory_bytes or 0 for m in drawn), default=0) or 1
    for m in drawn:
        size = 60 + 600 * (m.peak_memory_bytes or 0) / biggest
        axes.scatter([m.tokens_per_s], [100 * m.score], s=size, alpha=0.6)
        memory = f"{m.peak_memory_bytes / 1e6:,.0f} MB" if m.peak_memory_bytes else m.memory
        axes.annotate(
            f"{m.model}\n{memory}", (m.tokens_per_s, 100 * m.score), fontsize=7, ha="center", va="bottom"
        )
    axes.set_xlabel("decode speed (tokens/s, median)")
    axes.set_ylabel("score (% of checked items passed)")
    axes.set_ylim(-5, 110)
    axes.grid(alpha=0.3)
    if not drawn:
        axes.text(0.5, 0.5, "no scored answers yet", ha="center", va="center", transform=axes.transAxes)
    return figure


def ranking_rows(report: Any, battles: Sequence[RatedBattle]) -> list[list[Any]]:
    """This run's ranking (item by item: the checks, or the judge's verdicts), beside the Arena's ranking
    of the same models from human votes (where they were voted on)."""
    humans = {r.name: r for r in leaderboard(battles, rounds=50).sides.ratings} if battles else {}
    rows = []
    for rating in report.ranking.ratings:
        human = humans.get(rating.name)
        arena = "–" if human is None else f"{human.rating:.0f}"
        rows.append(
            [
                rating.name,
                f"{rating.rating:.0f} ({rating.low:.0f}–{rating.high:.0f})",
                arena,
                0 if human is None else human.games,
            ]
        )
    return rows


def agreement_line(report: Any) -> str:
    a = report.agreement
    if not report.run.judge:
        return f"Ranked by the checks, item by item ({report.ranked_by}). No judge in this run."
    parts = [f"Judge `{report.run.judge['model']}` ({report.run.judge['mode']})."]
    parts.append(
        "Agrees with the checks "
        + (f"{a.checks:.0%} of {a.checks_count} times." if a.checks is not None else ": nothing to compare.")
    )
    parts.append(
        "With the Arena's human votes on these prompts "
        + (f"{a.humans:.0%} of {a.humans_count} times." if a.humans is not None else ": none voted on yet.")
    )
    return safe_markdown(" ".join(parts))


def item_rows(run: EvalRunRow, results: Sequence[EvalResultRow]) -> list[list[Any]]:
    rows = []
    for r in results:
        item = run.items[r.item]
        verdict = r.verdict or {}
        mark = "–" if r.verdict is None else ("✓" if verdict.get("passed") else "✗")
        rows.append(
            [
                r.model,
                r.item + 1,
                item.get("category", ""),
                mark,
                verdict.get("detail", ""),
                " ".join(r.text.split())[:300],
            ]
        )
    return rows


def run_label(run: EvalRunRow) -> str:
    return (
        f"{run.created_utc[:16].replace('T', ' ')} · {run.set_name} · {len(run.models)} models · {run.status}"
    )


def _num(value: float | None, unit: str = "") -> str:
    return "–" if value is None else f"{value:.1f}{unit}"
