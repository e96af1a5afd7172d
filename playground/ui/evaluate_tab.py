"""The Evaluate tab: several models over a prompt set, scored by checks (and a judge), with speed and
memory measured here, results as they come, a chart of score against speed, and a card to repeat it.

The service is playground/evaluate/ (the CLI's `eval` is the same); this tab only draws its progress and
its report. Like every tab: small render methods returning typed groups, one `wire` method.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..context import AppContext
from ..errors import PlaygroundError
from ..evaluate import sets
from ..evaluate.card import card, to_csv, to_json, to_markdown
from ..evaluate.scores import Report, report
from ..evaluate.service import JUDGE_MODES, Judge
from ..history import check_owner_id
from ..options import GenerationOptions
from . import evaluate_display as show
from . import widgets
from .downloads import DownloadFolder
from .render import refusal, safe_markdown
from .streaming import ThreadedStream

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
UPLOADED = "(the file below)"
NO_JUDGE = ""


@dataclass
class EvaluateUI:
    run_id: gr.State
    models: gr.Dropdown
    prompt_set: gr.Dropdown
    upload: gr.File
    judge: gr.Dropdown
    judge_mode: gr.Radio
    max_new_tokens: gr.Number
    temperature: gr.Number
    seed: gr.Number
    start: gr.Button
    stop: gr.Button
    resume: gr.Button
    runs: gr.Dropdown
    progress: gr.Markdown
    table: gr.Dataframe
    chart: gr.Plot
    ranking: gr.Dataframe
    agreement: gr.Markdown
    items: gr.Dataframe
    exports: dict[str, gr.Button]
    download: gr.File
    answered: list[Any] = field(default_factory=list)  # the events that run models (public mode counts them)

    @property
    def shown(self) -> list[Any]:
        """What a run's handlers update, in `EvaluateTab.screen`'s order."""
        return [
            self.run_id,
            self.progress,
            self.table,
            self.chart,
            self.ranking,
            self.agreement,
            self.items,
            self.resume,
        ]


class EvaluateTab:
    """Handlers of the Evaluate tab; one instance per app, per-visitor data only in Gradio state."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.service = ctx.evals
        self.choices = widgets.model_choices(ctx.registry)
        age = ctx.settings.limits.files_max_age_min
        self.downloads = DownloadFolder("evaluate", None if age is None else age * 60)

    # Runs

    async def run(
        self, request: gr.Request, owner_value: Any, *values: Any
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Start a run with the visitor's choices and stream its progress; the report at the end."""
        try:
            owner = check_owner_id(owner_value)
            started = await asyncio.to_thread(self._start, owner, *values)
        except PlaygroundError as exc:
            yield self.screen(None, progress=safe_markdown(f"⚠ {exc}"))
            return
        async for update in self._follow(owner, started.id, request.session_hash):
            yield update

    def _start(
        self,
        owner: str,
        models: list[str],
        set_name: str,
        upload: str | None,
        judge: str,
        mode: str,
        *numbers: Any,
    ) -> Any:
        prompt_set = self._prompt_set(set_name, upload)
        tokens, temperature, seed = numbers
        options = GenerationOptions.parse(
            max_new_tokens=tokens, temperature=temperature, seed=None if seed in (None, "", -1) else seed
        )
        chosen = Judge(judge, mode) if judge else None
        return self.service.start(owner, models or [], prompt_set, options, chosen)

    def _prompt_set(self, name: str, upload: str | None) -> sets.PromptSet:
        if name != UPLOADED:
            return sets.load(name)
        if not upload:
            raise PlaygroundError("Choose a .jsonl or .csv file of prompts first (or pick a bundled set).")
        text = open(upload, encoding="utf-8", errors="replace").read()  # noqa: SIM115
        return sets.parse(text, name="uploaded", kind="csv" if upload.lower().endswith(".csv") else "jsonl")

    async def resume(
        self, request: gr.Request, owner_value: Any, run_id: str | None
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Continue a stopped or interrupted run: only the items not yet answered are asked."""
        try:
            owner = check_owner_id(owner_value)
            if not run_id:
                raise PlaygroundError("Open a run first (Runs), then Continue.")
        except PlaygroundError as exc:
            yield self.screen(run_id, progress=safe_markdown(f"⚠ {exc}"))
            return
        async for update in self._follow(owner, run_id, request.session_hash):
            yield update

    async def _follow(self, owner: str, run_id: str, session: str | None) -> AsyncIterator[tuple[Any, ...]]:
        """The run's progress as it comes (a line and the answers so far), then its whole report."""
        yield self.screen(run_id, progress="⏳ Starting: the first model loads…")
        steps = ThreadedStream(
            self.service.run(owner, run_id, session=session), min_interval_s=0.5
        ).__aiter__()
        async with contextlib.aclosing(steps):
            async for batch in steps:
                last = batch[-1]
                rows = await asyncio.to_thread(self._items, owner, run_id)
                yield self.screen(run_id, progress=show.progress_line(last), items=rows)
        yield await asyncio.to_thread(self.open_run, owner, run_id)

    def _items(self, owner: str, run_id: str) -> list[list[Any]]:
        run = self.ctx.history.evals.get_run(owner, run_id)
        return show.item_rows(run, self.ctx.history.evals.results(owner, run_id))

    def stop(self, request: gr.Request) -> None:
        """Stop the visitor's run: the answer streaming now, then the run (Continue goes on later)."""
        self.service.stop(request.session_hash)

    def open_run(self, owner: str, run_id: str) -> tuple[Any, ...]:
        """A run's whole report: the table, the chart, the ranking, the judge, every answer."""
        found = report(self.ctx.history, owner, run_id)
        humans = self.ctx.history.battles.list_rated_battles()
        return self.screen(
            run_id,
            progress=show.status_line(found),
            table=show.model_rows(found),
            chart=show.chart(found),
            ranking=show.ranking_rows(found, humans),
            agreement=show.agreement_line(found),
            items=show.item_rows(found.run, found.results),
            resumable=found.run.status in ("stopped", "interrupted"),
        )

    def reopen(self, owner_value: Any, run_id: str | None) -> tuple[Any, ...]:
        try:
            if not run_id:
                return self.screen(None)
            return self.open_run(check_owner_id(owner_value), run_id)
        except PlaygroundError as exc:
            return self.screen(run_id, progress=safe_markdown(f"⚠ {exc}"))

    def list_runs(self, owner_value: Any) -> Any:
        try:
            runs = self.ctx.history.evals.list_runs(check_owner_id(owner_value))
        except PlaygroundError:
            runs = []
        return gr.Dropdown(choices=[(show.run_label(r), r.id) for r in runs], value=None)

    def screen(
        self,
        run_id: str | None,
        *,
        progress: str = "",
        table: Any = None,
        chart: Any = None,
        ranking: Any = None,
        agreement: str = "",
        items: Any = None,
        resumable: bool = False,
    ) -> tuple[Any, ...]:
        """Every output of the run handlers (EvaluateUI.shown's order); None leaves one as it is."""
        keep = gr.update()
        return (
            run_id,
            progress,
            keep if table is None else table,
            keep if chart is None else chart,
            keep if ranking is None else ranking,
            agreement or keep,
            keep if items is None else items,
            gr.Button(interactive=resumable),
        )

    def export(self, kind: str, owner_value: Any, run_id: str | None) -> str:
        """The open run's card as JSON, CSV or Markdown."""
        try:
            if not run_id:
                raise PlaygroundError("Run an evaluation first (or open one from Runs).")
            data = card(report(self.ctx.history, check_owner_id(owner_value), run_id))
        except PlaygroundError as exc:
            raise refusal(exc) from None
        text = {"json": to_json, "csv": to_csv, "md": to_markdown}[kind](data)
        return str(self.downloads.write(f"evaluation-card.{kind}", text))

    # Layout and events

    def build(self, owner: gr.State) -> EvaluateUI:
        gr.Markdown(show.intro(self.ctx.settings))
        ui = EvaluateUI(gr.State(None), *self.render_choice(), *self.render_actions(), *self.render_results())
        ui.answered = self.wire(owner, ui)
        return ui

    def render_choice(self) -> tuple[Any, ...]:
        limits = self.ctx.settings.eval_limits
        with gr.Row():
            models = gr.Dropdown(
                self.choices, multiselect=True, max_choices=limits.models, label=f"Models (2 to {limits.models})",
                elem_id="evaluate-models", scale=3,
            )  # fmt: skip
            prompt_set = gr.Dropdown(
                [*sets.bundled(), UPLOADED], value=next(iter(sets.bundled()), UPLOADED), label="Prompt set",
                elem_id="evaluate-set", scale=1,
            )  # fmt: skip
            upload = gr.File(
                label="Your own set (.jsonl or .csv)", file_types=[".jsonl", ".csv"], type="filepath", scale=1
            )
        with gr.Row():
            judge = gr.Dropdown(
                [("none", NO_JUDGE), *self.choices], value=NO_JUDGE, label="Judge (optional)", scale=2
            )
            mode = gr.Radio(list(JUDGE_MODES), value="grade", label="The judge", scale=1)
            tokens = gr.Number(
                min(128, limits.max_new_tokens or 128), precision=0, label="Max new tokens", scale=1
            )
            temperature = gr.Number(0.0, label="Temperature (0: greedy, repeatable)", scale=1)
            seed = gr.Number(-1, precision=0, label="Seed (-1: none)", scale=1)
        return models, prompt_set, upload, judge, mode, tokens, temperature, seed

    def render_actions(self) -> tuple[Any, ...]:
        with gr.Row():
            start = gr.Button("Run", variant="primary", elem_id="evaluate-run")
            stop = gr.Button("Stop", variant="stop", elem_id="evaluate-stop")
            resume = gr.Button("Continue", interactive=False, elem_id="evaluate-continue")
            runs = gr.Dropdown([], label="Runs (open one)", elem_id="evaluate-runs", scale=2)
        progress = gr.Markdown(elem_id="evaluate-progress")
        return start, stop, resume, runs, progress

    def render_results(self) -> tuple[Any, ...]:
        table = gr.Dataframe(
            headers=show.MODEL_HEADERS, interactive=False, wrap=True, elem_id="evaluate-table"
        )
        chart = gr.Plot(label="Score against decode speed (size: peak memory)", elem_id="evaluate-chart")
        ranking = gr.Dataframe(
            headers=show.RANKING_HEADERS, interactive=False, wrap=True, elem_id="evaluate-ranking"
        )
        agreement = gr.Markdown(elem_id="evaluate-agreement")
        with gr.Accordion("Every answer", open=False):
            items = gr.Dataframe(
                headers=show.ITEM_HEADERS, interactive=False, wrap=True, elem_id="evaluate-items"
            )
        with gr.Row():
            exports = {
                kind: gr.Button(f"Card ({label})", size="sm")
                for kind, label in (("json", "JSON"), ("csv", "CSV"), ("md", "Markdown"))
            }
        download = gr.File(label="Card", interactive=False, height=80, elem_id="evaluate-card")
        return table, chart, ranking, agreement, items, exports, download

    def wire(self, owner: gr.State, ui: EvaluateUI) -> list[Any]:
        """Connect the components to the handlers; the events that run models."""
        chosen = [
            ui.models,
            ui.prompt_set,
            ui.upload,
            ui.judge,
            ui.judge_mode,
            ui.max_new_tokens,
            ui.temperature,
            ui.seed,
        ]
        started = ui.start.click(self.run, [owner, *chosen], ui.shown, concurrency_limit=2, **PRIVATE)
        started.then(self.list_runs, owner, ui.runs, **PRIVATE)
        resumed = ui.resume.click(self.resume, [owner, ui.run_id], ui.shown, concurrency_limit=2, **PRIVATE)
        ui.stop.click(self.stop, None, None, queue=False, **PRIVATE)
        ui.runs.focus(self.list_runs, owner, ui.runs, **PRIVATE)
        ui.runs.input(self.reopen, [owner, ui.runs], ui.shown, **PRIVATE)
        for kind, button in ui.exports.items():
            button.click(
                lambda o, r, k=kind: self.export(k, o, r), [owner, ui.run_id], ui.download, **PRIVATE
            )
        return [started, resumed]


__all__ = ["EvaluateTab", "EvaluateUI", "Report"]
