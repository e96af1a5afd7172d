"""The Arena tab: one prompt, two models side by side, live metrics, a vote, the leaderboard, an export.

Named mode: the visitor picks both sides (or a preset). Blind mode: a random pair of ready models, whose
names and engines stay out of everything the page receives until the vote (every output comes from the
arena's anonymised views; the pair itself lives only in the history store). Both panes stream at once,
each from its own producer, folded into one page update per tick (ui/streaming.FoldedStreams); Stop is
per pane, keyed by (session, pane), with "Stop both". After each round a chart compares the two.

The MoE tab links here with `preset_link(DENSE_VS_MOE)` (`?arena=dense-vs-moe`): on page load the Arena
tab opens with that preset chosen.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from ..answers import Event
from ..arena import sync
from ..arena.anonymise import safe_text
from ..arena.export import export_battle, to_json, to_markdown
from ..arena.pairing import PRESETS, Pair, Side, blind, preset_pair, preset_states
from ..arena.service import ArenaService, Round, pane
from ..context import AppContext
from ..errors import HistoryError, PlaygroundError
from ..history import check_owner_id
from ..text import valid_text
from ..types import ModelSpec
from . import arena_display as show
from . import widgets
from .arena_display import SIDES, LivePane, RoundDict
from .downloads import DownloadFolder
from .streaming import FoldedStreams

DENSE_VS_MOE = "dense-vs-moe"  # the preset the MoE tab's card links to
LINK_PARAM = "arena"
TAB_ID = "arena"
NAMED, BLIND = "Named: pick both models", "Blind: two random models, named after your vote"
VOTES = (("a", "← A is better"), ("b", "B is better →"), ("tie", "Tie"), ("both_bad", "Both are bad"))
PREPARING = "⏳ Sending the prompt to both models (a model's first use loads it first)…"
HIDDEN_ERROR = "One of the models could not answer (the details are shown after the vote)."
# What `screen` returns, in order (the round handlers' outputs)
OUTPUT_NAMES = (
    "battle", "rounds", "chat_a", "chat_b", "head_a", "head_b", "status_a", "status_b", "notice", "prompt",
    *(f"vote_{key}" for key, _ in VOTES), *(f"chart_{key}" for key, _, _ in show.CHARTS),
)  # fmt: skip
PaneValues = tuple[Any, ...]  # system prompt, then widgets.OPTION_NAMES' values


def preset_link(key: str = DENSE_VS_MOE) -> str:
    """A link (relative to the page) that opens the Arena tab with this preset chosen."""
    return f"?{LINK_PARAM}={key}"


@dataclass
class ArenaUI:
    """What app.py wires beyond the tab: the page-load link to a preset."""

    open_link: Any
    link_outputs: list[Any]
    answered: list[Any]


class ArenaTab:
    """Handlers of the Arena tab; one instance per app, per-visitor data only in Gradio state."""

    def __init__(self, ctx: AppContext, arena: ArenaService | None = None) -> None:
        self.ctx = ctx
        self.arena = arena or ArenaService.from_context(ctx)
        self.choices = widgets.model_choices(ctx.registry)
        self.default_model = widgets.default_model(self.choices, ctx.settings.default_model, ctx.registry)
        age = ctx.settings.limits.files_max_age_min
        self.downloads = DownloadFolder("arena", None if age is None else age * 60)  # exports, pruned by age

    # Choosing the sides

    def preset_choices(self) -> list[tuple[str, str]]:
        choices = [("(none: pick below)", "")]
        for state in preset_states(self.ctx.registry):
            mark = "" if state.available else " — not ready"
            choices.append((state.preset.title + mark, state.preset.key))
        return choices

    def choose_preset(self, key: str | None) -> tuple[Any, Any, str]:
        """The two pickers set to the preset's sides, and what it is (or why it is not ready)."""
        if not key:
            return gr.update(), gr.update(), ""
        preset = next(p for p in PRESETS if p.key == key)
        try:
            pair = preset_pair(self.ctx.registry, key)
        except PlaygroundError as exc:
            return gr.update(), gr.update(), f"⛔ **{preset.title}** is not ready: {exc}"
        return pair.a.model, pair.b.model, f"**{preset.title}**: {preset.note}"

    def open_link(self, request: gr.Request) -> tuple[Any, ...]:
        """On page load: `?arena=<preset>` opens this tab with that preset (the MoE tab links here)."""
        key = (request.query_params.get(LINK_PARAM) or "") if request is not None else ""
        if key not in {p.key for p in PRESETS}:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        model_a, model_b, note = self.choose_preset(key)
        return gr.Tabs(selected=TAB_ID), NAMED, key, model_a, model_b, note

    def pair(
        self, mode: str, preset: str | None, model_a: str, model_b: str, sides: Mapping[str, Side]
    ) -> Pair:
        """The battle's two sides as the visitor set them (`sides` carry the options and system prompts)."""
        if mode == BLIND:
            drawn = blind(self.ctx.registry, random.Random())
            return replace(
                drawn, a=replace(sides["a"], model=drawn.a.model), b=replace(sides["b"], model=drawn.b.model)
            )
        chosen = Pair(replace(sides["a"], model=model_a), replace(sides["b"], model=model_b), "named")
        if preset:
            try:
                fixed = preset_pair(self.ctx.registry, preset)
            except PlaygroundError:
                return chosen
            if (fixed.a.model, fixed.b.model) == (model_a, model_b):
                return replace(chosen, preset=preset)
        return chosen

    # A round

    async def play(
        self,
        owner_value: Any,
        battle_id: str | None,
        rounds: list[RoundDict],
        mode: str,
        preset: str | None,
        model_a: str,
        model_b: str,
        prompt: str,
        same: bool,
        system_a: str,
        temperature_a: float,
        top_p_a: float,
        top_k_a: int,
        max_new_tokens_a: int,
        repetition_penalty_a: float,
        seed_a: float | None,
        stop_a: str,
        system_b: str,
        temperature_b: float,
        top_p_b: float,
        top_k_b: int,
        max_new_tokens_b: int,
        repetition_penalty_b: float,
        seed_b: float | None,
        stop_b: str,
        request: gr.Request,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Send the prompt to both sides: a new battle, or the next round of the open one (multi-turn)."""
        pane_a = (
            system_a,
            temperature_a,
            top_p_a,
            top_k_a,
            max_new_tokens_a,
            repetition_penalty_a,
            seed_a,
            stop_a,
        )
        pane_b = (
            system_b,
            temperature_b,
            top_p_b,
            top_k_b,
            max_new_tokens_b,
            repetition_penalty_b,
            seed_b,
            stop_b,
        )
        prompt = valid_text(prompt or "")
        blind_specs: dict[str, ModelSpec] = {}
        try:
            owner = check_owner_id(owner_value)
            if prompt.strip():
                yield self.screen(battle_id, rounds, notice=PREPARING, keep_prompt=True)
            if battle_id and rounds:
                round_ = await asyncio.to_thread(self.arena.next_round, owner, battle_id, prompt)
            else:  # a new battle: nothing of the one before stays (Export must not find it)
                battle_id, rounds = None, []
                sides = self.sides(pane_a, pane_b if not same else pane_a)
                pair = self.pair(mode, preset, model_a, model_b, sides)
                if pair.mode == "blind":
                    blind_specs = {
                        n: self.ctx.registry.resolve(s.model) for n, s in (("a", pair.a), ("b", pair.b))
                    }
                round_ = await asyncio.to_thread(self.arena.start, owner, pair, prompt)
        except PlaygroundError as exc:
            yield self.screen(
                battle_id, rounds, notice=self.hidden_message(exc, blind_specs), keep_prompt=True
            )
            return
        async for update in self._run(owner, round_, rounds, request.session_hash):
            yield update

    async def regenerate(
        self, owner_value: Any, battle_id: str | None, rounds: list[RoundDict], request: gr.Request
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Ask the latest round again (before its vote)."""
        try:
            owner = check_owner_id(owner_value)
            if not battle_id or not rounds:
                raise HistoryError("Send a prompt first: there is no round to ask again.")
            round_ = await asyncio.to_thread(self.arena.regenerate, owner, battle_id)
        except PlaygroundError as exc:
            yield self.screen(battle_id, rounds, notice=self.hidden_message(exc, {}))
            return
        async for update in self._run(owner, round_, rounds[:-1], request.session_hash):
            yield update

    async def _run(
        self, owner: str, round_: Round, before: list[RoundDict], session: str | None
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Stream both sides at once (one after the other where the arena says so), one update per tick."""
        battle_id = round_.battle.id
        live = {name: LivePane() for name in SIDES}
        errors: list[str] = []

        def current() -> list[RoundDict]:
            return [*before, self.arena.view(round_).to_dict()]

        def live_metrics() -> dict[str, dict[str, object]]:
            runs = round_.runs
            return {n: live[n].metrics(runs[n].prompt_tokens) for n in SIDES if runs[n].finish_reason is None}

        yield self.screen(battle_id, current(), live=live_metrics(), streaming=True)
        answers = self.arena.streams(owner, round_, session)
        groups = [["a"], ["b"]] if self.arena.serialise(round_) else [list(SIDES)]
        try:
            for group in groups:
                folded: FoldedStreams[Event] = FoldedStreams(
                    {n: answers[n] for n in group},
                    stops={n: answers[n].stop_event for n in group},
                    ends_itself=True,
                )
                async for update in folded:
                    for name, events in update.items.items():
                        live[name].take(events)
                    for name, error in update.ended.items():
                        live[name].ended = live[name].ended or time.perf_counter()
                        if error is not None:  # not one of ours: the pipeline turns those into Finished
                            errors.append(
                                self.hidden_message(error, round_.specs, hidden=round_.battle.mode == "blind")
                            )
                    yield self.screen(battle_id, current(), live=live_metrics(), streaming=True)
        finally:
            for answer in answers.values():
                answer.close()  # a side never started (the visitor left first) gives its Stop back
        yield self.screen(battle_id, current(), notice="\n\n".join(f"⚠ {e}" for e in errors), chart=True)

    def sides(self, pane_a: PaneValues, pane_b: PaneValues) -> dict[str, Side]:
        """Each pane's system prompt and parameters (validated: a bad value is a message)."""
        return {
            name: Side(
                "", options=widgets.options_from(*values[1:]), system=valid_text(str(values[0] or "")).strip()
            )
            for name, values in (("a", pane_a), ("b", pane_b))
        }

    def hidden_message(
        self, error: BaseException, specs: Mapping[str, ModelSpec], *, hidden: bool = True
    ) -> str:
        """An error's message; in a blind round, without any name of either side."""
        text = str(error) or type(error).__name__
        if not specs or not hidden:
            return text
        return safe_text(text, specs, HIDDEN_ERROR)

    # What the page shows

    def screen(
        self,
        battle_id: str | None,
        rounds: list[RoundDict],
        *,
        live: Mapping[str, Mapping[str, object]] | None = None,
        streaming: bool = False,
        notice: str = "",
        chart: bool = False,
        keep_prompt: bool = False,
    ) -> tuple[Any, ...]:
        """Every output of a round's handlers, from the views alone (see OUTPUTS in build)."""
        last = rounds[-1] if rounds else None
        can_vote = (
            not streaming
            and last is not None
            and last.get("vote") is None
            and all(show.side_of(last, n).get("finish_reason") is not None for n in SIDES)
        )
        votes = [gr.Button(interactive=can_vote) for _ in VOTES]
        charts: list[Any] = [gr.update()] * len(show.CHARTS)
        if chart or not rounds:
            charts = [gr.BarPlot(value=frame) for frame in show.chart_frames(last)]
        live = live or {}
        return (
            battle_id,
            rounds,
            show.chat(rounds, "a", streaming=streaming),
            show.chat(rounds, "b", streaming=streaming),
            show.header(last, "a"),
            show.header(last, "b"),
            show.pane_status(last, "a", live.get("a")),
            show.pane_status(last, "b", live.get("b")),
            notice,
            gr.update() if keep_prompt else "",
            *votes,
            *charts,
        )

    def new_round(self) -> tuple[Any, ...]:
        """A fresh battle: the panes emptied; the next prompt starts with the sides chosen now."""
        return self.screen(None, [], keep_prompt=True)

    def stop(self, sides: Sequence[str], request: gr.Request) -> None:
        """Stop these sides' answers ("a", "b"); the engine stops at its next token."""
        self.ctx.answers.stop(request.session_hash, [pane(side) for side in sides])

    def stop_a(self, request: gr.Request) -> None:
        self.stop(["a"], request)

    def stop_b(self, request: gr.Request) -> None:
        self.stop(["b"], request)

    def stop_both(self, request: gr.Request) -> None:
        self.stop(SIDES, request)

    # The vote, the leaderboard, the export

    def vote(
        self, choice: str, owner_value: Any, battle_id: str | None, rounds: list[RoundDict]
    ) -> tuple[Any, ...]:
        """Record the vote, reveal the names (every round of the battle), refresh the leaderboard."""
        try:
            owner = check_owner_id(owner_value)
            if not battle_id or not rounds:
                raise HistoryError("Send a prompt to both models first, then vote.")
            voted = self.arena.vote(owner, battle_id, choice).to_dict()
            rounds = [self.arena.load(owner, str(r["battle_id"])).to_dict() for r in rounds[:-1]] + [voted]
        except PlaygroundError as exc:
            return (
                *self.screen(battle_id, rounds, notice=f"⚠ {exc}", keep_prompt=True),
                *self.board_outputs(),
            )
        notice = show.reveal_text(voted)
        left = self.arena.votes_left(owner)
        if left is not None:
            notice += f" You have {left} vote(s) left today."
        return (
            *self.screen(battle_id, rounds, notice=notice, chart=True, keep_prompt=True),
            *self.board_outputs(),
        )

    def board_outputs(self, view: str = "Per side (model and engine)") -> tuple[Any, ...]:
        board = self.arena.leaderboard()
        table = board.models if view.startswith("Per model") else board.sides
        return show.ratings_frame(table), show.win_rate_frame(table), show.counts_line(board)

    def export(self, kind: str, owner_value: Any, battle_id: str | None) -> tuple[Any, str]:
        """The open battle as a Markdown or JSON file, with the code that repeats each side."""
        try:
            owner = check_owner_id(owner_value)
            if not battle_id:
                raise HistoryError("Play a round first: there is no battle to export.")
            data = export_battle(self.ctx.history, self.ctx.registry, owner, battle_id)
        except PlaygroundError as exc:
            return None, f"⚠ {exc}"
        name = f"arena-battle.{'json' if kind == 'json' else 'md'}"
        path = self.downloads.write(name, to_json(data) if kind == "json" else to_markdown(data))
        return str(path), f"✅ Exported round(s) 1–{len(data['rounds'])}."

    # Layout and events

    def build(self, owner: gr.State) -> ArenaUI:
        reg = self.ctx.registry
        default_b = "smollm2-135m-instruct@transformers"
        if not any(v == default_b for _, v in self.choices):
            default_b = self.default_model
        initial = widgets.recommended(reg.resolve(self.default_model))
        battle, rounds = gr.State(None), gr.State([])
        gr.Markdown(
            "One prompt, two models, side by side: time to first token and speed live per pane, then your "
            "vote. In **blind** mode the models are named only after you vote."
        )
        with gr.Row():
            mode = gr.Radio([NAMED, BLIND], value=NAMED, label="Mode", elem_id="arena-mode", scale=2)
            preset = gr.Dropdown(
                self.preset_choices(), value="", label="Preset", elem_id="arena-preset", scale=2
            )
        preset_note = gr.Markdown(elem_id="arena-preset-note")
        with gr.Row() as pickers:
            model_a = gr.Dropdown(
                self.choices, value=self.default_model, label="Model A", elem_id="arena-model-a"
            )
            model_b = gr.Dropdown(self.choices, value=default_b, label="Model B", elem_id="arena-model-b")
        with gr.Row():
            panes: dict[str, dict[str, Any]] = {}
            for name in SIDES:
                with gr.Column():
                    head = gr.Markdown(show.header(None, name), elem_id=f"arena-head-{name}")
                    chatbot = gr.Chatbot(
                        elem_id=f"arena-chat-{name}", height=320, show_label=False, buttons=["copy"]
                    )
                    status = gr.Markdown(elem_id=f"arena-metrics-{name}", elem_classes=["chat-notice"])
                    stop_btn = gr.Button(
                        f"Stop {name.upper()}", size="sm", variant="stop", elem_id=f"arena-stop-{name}"
                    )
                panes[name] = {"head": head, "chat": chatbot, "status": status, "stop": stop_btn}
        notice = gr.Markdown(elem_id="arena-notice")
        with gr.Row():
            prompt = gr.Textbox(
                show_label=False,
                scale=6,
                lines=1,
                max_lines=8,
                elem_id="arena-input",
                placeholder="One prompt for both models, Enter to send",
            )
            send = gr.Button("Send to both", variant="primary", scale=1, elem_id="arena-send")
            stop_both = gr.Button("Stop both", variant="stop", scale=1, elem_id="arena-stop-both")
        with gr.Row():
            regenerate = gr.Button("↻ Regenerate", size="sm", elem_id="arena-regenerate")
            new = gr.Button("+ New round (new pair)", size="sm", elem_id="arena-new")
        with gr.Row():
            vote_buttons = [
                gr.Button(label, interactive=False, elem_id=f"arena-vote-{key}") for key, label in VOTES
            ]
        with gr.Row():
            charts = [
                gr.BarPlot(
                    None,
                    x="side",
                    y="value",
                    color="side",
                    title=title,
                    y_title=title,
                    height=220,
                    y_lim=[0, None],
                    elem_id=f"arena-chart-{key}",
                )
                for key, title, _ in show.CHARTS
            ]
        with gr.Accordion("System prompts and parameters", open=False):
            same = gr.Checkbox(True, label="Same for both", elem_id="arena-same")
            with gr.Row():
                values: dict[str, list[Any]] = {}
                columns = {}
                for name in SIDES:
                    with gr.Column(visible=name == "a") as column:
                        gr.Markdown(f"**{'A (and B, when the same)' if name == 'a' else 'B'}**")
                        system = gr.Textbox(label="System prompt", lines=2, elem_id=f"arena-system-{name}")
                        options = widgets.option_inputs(f"arena-{name}", initial).components
                    values[name], columns[name] = [system, *options], column
        with gr.Accordion("Leaderboard", open=True):
            board_view = gr.Radio(
                ["Per side (model and engine)", "Per model"],
                value="Per side (model and engine)",
                show_label=False,
                elem_id="arena-board-view",
            )
            first = self.board_outputs()
            kept = sync.reset_notice(bool(self.ctx.settings.space_id), self.ctx.arena_sync is not None)
            if kept:  # on a Space without PLAYGROUND_DATASET
                gr.Markdown(kept, elem_id="arena-board-reset", elem_classes=["chat-notice"])
            counts = gr.Markdown(first[2], elem_id="arena-board-counts")
            ratings = gr.Dataframe(first[0], interactive=False, elem_id="arena-board", wrap=True)
            win_rates = gr.Dataframe(
                first[1], interactive=False, label="Win rate (row against column)", elem_id="arena-win-rates"
            )
            refresh = gr.Button("Refresh", size="sm", elem_id="arena-board-refresh")
        with gr.Accordion("Export this battle (with the code that repeats each side)", open=False):
            with gr.Row():
                export_md = gr.Button("Markdown", size="sm", elem_id="arena-export-md")
                export_json = gr.Button("JSON", size="sm", elem_id="arena-export-json")
            download = gr.File(label="Export", interactive=False, elem_id="arena-export", height=80)
            export_status = gr.Markdown(elem_id="arena-export-status")

        outputs = [
            battle,
            rounds,
            panes["a"]["chat"],
            panes["b"]["chat"],
            panes["a"]["head"],
            panes["b"]["head"],
            panes["a"]["status"],
            panes["b"]["status"],
            notice,
            prompt,
            *vote_buttons,
            *charts,
        ]
        board = [ratings, win_rates, counts]
        private: dict[str, Any] = {"api_visibility": "private"}
        play: dict[str, Any] = {
            "fn": self.play,
            "inputs": [
                owner,
                battle,
                rounds,
                mode,
                preset,
                model_a,
                model_b,
                prompt,
                same,
                *values["a"],
                *values["b"],
            ],
            "outputs": outputs,
            "concurrency_limit": 4,
            "trigger_mode": "once",
            **private,
        }
        answered = [
            prompt.submit(**play),
            send.click(**play),
            regenerate.click(
                self.regenerate, [owner, battle, rounds], outputs, trigger_mode="once", **private
            ),
        ]
        panes["a"]["stop"].click(self.stop_a, None, None, queue=False, **private)
        panes["b"]["stop"].click(self.stop_b, None, None, queue=False, **private)
        stop_both.click(self.stop_both, None, None, queue=False, **private)
        new.click(self.new_round, None, outputs, queue=False, **private)
        for (key, _), button in zip(VOTES, vote_buttons, strict=True):
            button.click(
                lambda o, b, r, k=key: self.vote(k, o, b, r),
                [owner, battle, rounds],
                [*outputs, *board],
                **private,
            )
        board_view.change(self.board_outputs, board_view, board, **private)
        refresh.click(self.board_outputs, board_view, board, **private)
        export_md.click(
            lambda o, b: self.export("md", o, b), [owner, battle], [download, export_status], **private
        )
        export_json.click(
            lambda o, b: self.export("json", o, b), [owner, battle], [download, export_status], **private
        )
        preset.change(self.choose_preset, preset, [model_a, model_b, preset_note], queue=False, **private)
        mode.change(lambda m: gr.Row(visible=m == NAMED), mode, pickers, queue=False, **private)
        same.change(lambda s: gr.Column(visible=not s), same, columns["b"], queue=False, **private)
        return ArenaUI(self.open_link, [mode, preset, model_a, model_b, preset_note], answered)
