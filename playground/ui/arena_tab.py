"""The Arena tab: one prompt, two models side by side, live metrics, a vote, the leaderboard, an export.

Named mode: the visitor picks both sides (or a preset). Blind mode: a random pair of ready models, whose
names and engines stay out of everything the page receives until the vote (every output comes from the
arena's anonymised views; the pair itself lives only in the history store). Both panes stream at once,
each from its own producer, folded into one page update per tick (ui/streaming.FoldedStreams); Stop is
per pane, keyed by (session, pane), with "Stop both". After each round a chart compares the two. With
"Token view" ticked, both sides give each token's probability and alternatives, and a view under each pane
shows its side's tokens, streamed by delta as the chat tabs stream theirs (arena_display.LivePane).

The MoE tab links here with `preset_link(DENSE_VS_MOE)` (`?arena=dense-vs-moe`): on page load the Arena
tab opens with that preset chosen.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import gradio as gr

from ..answers import Event
from ..arena.anonymise import safe_text
from ..arena.export import export_battle, to_json, to_markdown
from ..arena.pairing import PRESETS, Pair, Side, blind, preset_pair, preset_states
from ..arena.service import ArenaService, Round, pane
from ..context import AppContext
from ..errors import HistoryError, ModelUnavailableError, PlaygroundError
from ..history import check_owner_id
from ..needs import preset_problem, problem_with_alternatives
from ..public.address import request_address
from ..text import valid_text
from ..token_view import TOKEN_VIEW_K
from ..types import ModelSpec
from . import arena_display as show
from . import widgets
from .arena_display import BLIND, NAMED, NO_TOKENS, SIDES, LivePane, RoundDict
from .arena_layout import BOARD_VIEWS, VOTES, ArenaLayout, ArenaUI
from .downloads import DownloadFolder
from .streaming import FoldedStreams

DENSE_VS_MOE = "dense-vs-moe"  # the preset the MoE tab's card links to
LINK_PARAM = "arena"
TAB_ID = "arena"
PREPARING = "⏳ Sending the prompt to both models (a model's first use loads it first)…"
HIDDEN_ERROR = "One of the models could not answer (the details are shown after the vote)."
# What `screen` returns, in order (the round handlers' outputs)
OUTPUT_NAMES = (
    "battle", "rounds", "chat_a", "chat_b", "head_a", "head_b", "status_a", "status_b", "notice", "prompt",
    *(f"vote_{key}" for key, _ in VOTES), *(f"chart_{key}" for key, _, _ in show.CHARTS),
    "tokens_a", "tokens_b",
)  # fmt: skip
PaneValues = tuple[Any, ...]  # system prompt, then widgets.OPTION_NAMES' values
PANE_VALUES = 1 + len(widgets.OPTION_NAMES)


def preset_link(key: str = DENSE_VS_MOE) -> str:
    """A link (relative to the page) that opens the Arena tab with this preset chosen."""
    return f"?{LINK_PARAM}={key}"


def pane_sides(pane_a: PaneValues, pane_b: PaneValues) -> dict[str, Side]:
    """Each pane's system prompt and parameters (validated: a bad value is a message)."""
    return {
        name: Side(
            "", options=widgets.options_from(*values[1:]), system=valid_text(str(values[0] or "")).strip()
        )
        for name, values in (("a", pane_a), ("b", pane_b))
    }


def hidden_message(error: BaseException, specs: Mapping[str, ModelSpec], *, hidden: bool = True) -> str:
    """An error's message; in a blind round, without any name of either side."""
    text = str(error) or type(error).__name__
    if not specs or not hidden:
        return text
    return safe_text(text, specs, HIDDEN_ERROR)


class ArenaTab:
    """Handlers of the Arena tab; one instance per app, per-visitor data only in Gradio state."""

    def __init__(self, ctx: AppContext, arena: ArenaService | None = None) -> None:
        self.ctx = ctx
        self.arena = arena or ArenaService.from_context(ctx)
        self.choices = widgets.model_choices(ctx.registry)
        self.default_model = widgets.default_model(self.choices, ctx.settings.default_model, ctx.registry)
        default_b = "smollm2-135m-instruct@transformers"  # the same model on another engine, where listed
        self.default_b = default_b if any(v == default_b for _, v in self.choices) else self.default_model
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
        problem = preset_problem(self.ctx.registry, key)
        try:
            pair = preset_pair(self.ctx.registry, key)
        except PlaygroundError as exc:
            return gr.update(), gr.update(), problem_with_alternatives(self.ctx.registry, problem or str(exc))
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

    async def play(self, request: gr.Request, *values: Any) -> AsyncIterator[tuple[Any, ...]]:
        """Send the prompt to both sides: a new battle, or the next round of the open one (multi-turn).

        `values`: the owner, the battle, its rounds, the mode, the preset, model A, model B, the prompt,
        "same for both", then each pane's system prompt and parameters, then the Token view toggle
        (arena_layout's `wire` order; without it, off)."""
        owner_value, battle_id, rounds, mode, preset, model_a, model_b, prompt, same = values[:9]
        pane_a, pane_b = values[9 : 9 + PANE_VALUES], values[9 + PANE_VALUES : 9 + 2 * PANE_VALUES]
        token_view = bool(values[9 + 2 * PANE_VALUES]) if len(values) > 9 + 2 * PANE_VALUES else False
        prompt = valid_text(prompt or "")
        blind_specs: dict[str, ModelSpec] = {}
        try:
            owner = check_owner_id(owner_value)
            self.ctx.note_address(owner, request)
            if prompt.strip():
                yield self.screen(battle_id, rounds, notice=PREPARING, keep_prompt=True)
            problem = preset_problem(self.ctx.registry, preset) if preset and mode != BLIND else None
            if problem:  # a not-ready preset runs nothing (not the pair shown before it)
                raise ModelUnavailableError(problem)
            sides = pane_sides(pane_a, pane_b if not same else pane_a)
            pair = self.pair(mode, preset, model_a, model_b, sides)
            if rounds and self.arena.continues(owner, battle_id, pair):
                round_ = await asyncio.to_thread(self.arena.next_round, owner, str(battle_id), prompt)
            else:  # a new battle: nothing of the one before stays (Export must not find it)
                battle_id, rounds = None, []
                if pair.mode == "blind":
                    blind_specs = {
                        n: self.ctx.registry.resolve(s.model) for n, s in (("a", pair.a), ("b", pair.b))
                    }
                round_ = await asyncio.to_thread(self.arena.start, owner, pair, prompt)
        except PlaygroundError as exc:
            yield self.screen(battle_id, rounds, notice=hidden_message(exc, blind_specs), keep_prompt=True)
            return
        async for update in self._run(owner, round_, rounds, request.session_hash, token_view):
            yield update

    async def regenerate(
        self,
        owner_value: Any,
        battle_id: str | None,
        rounds: list[RoundDict],
        request: gr.Request,
        token_view: bool = False,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Ask the latest round again (before its vote)."""
        try:
            owner = check_owner_id(owner_value)
            self.ctx.note_address(owner, request)
            if not battle_id or not rounds:
                raise HistoryError("Send a prompt first: there is no round to ask again.")
            round_ = await asyncio.to_thread(self.arena.regenerate, owner, battle_id)
        except PlaygroundError as exc:
            yield self.screen(battle_id, rounds, notice=hidden_message(exc, {}))
            return
        async for update in self._run(owner, round_, rounds[:-1], request.session_hash, bool(token_view)):
            yield update

    async def _run(
        self, owner: str, round_: Round, before: list[RoundDict], session: str | None, token_view: bool
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Stream both sides at once (one after the other where the arena says so), one update per tick;
        each pane's token view by delta (drawn from the start by the first update)."""
        battle_id, is_blind = round_.battle.id, round_.battle.mode == "blind"
        live = {name: LivePane() for name in SIDES}
        errors: list[str] = []

        def tokens(end: bool = False) -> tuple[Any, ...]:
            runs = round_.runs
            return tuple(
                live[n].token_view(runs[n].spec, ended=end or runs[n].done, blind=is_blind) for n in SIDES
            )

        def current() -> list[RoundDict]:
            return [*before, self.arena.view(round_).to_dict()]

        def live_metrics() -> dict[str, dict[str, object]]:
            runs = round_.runs
            return {n: live[n].metrics(runs[n].prompt_tokens) for n in SIDES if runs[n].finish_reason is None}

        yield self.screen(battle_id, current(), live=live_metrics(), streaming=True, tokens=tokens())
        answers = self.arena.streams(owner, round_, session, logprobs=TOKEN_VIEW_K if token_view else None)
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
                            errors.append(hidden_message(error, round_.specs, hidden=is_blind))
                    yield self.screen(
                        battle_id, current(), live=live_metrics(), streaming=True, tokens=tokens()
                    )
        finally:
            for answer in answers.values():
                answer.close()  # a side never started (the visitor left first) gives its Stop back
        notice = "\n\n".join(f"⚠ {e}" for e in errors)
        yield self.screen(battle_id, current(), notice=notice, chart=True, tokens=tokens(end=True))

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
        tokens: tuple[Any, ...] | None = None,
    ) -> tuple[Any, ...]:
        """Every output of a round's handlers, from the views alone (see OUTPUTS in build); the token
        views as given (by delta), emptied without rounds (a new battle), left alone otherwise."""
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
            *(tokens or (gr.update() if rounds else NO_TOKENS for _ in SIDES)),
        )

    def new_round(self) -> tuple[Any, ...]:
        """A fresh battle: the panes emptied; the next prompt starts with the sides chosen now."""
        return self.screen(None, [], keep_prompt=True)

    def toggle_tokens(self, on: bool) -> tuple[Any, ...]:
        """Show or hide both panes' token views (filled by the next round asked with Token view on)."""
        return tuple(gr.update(visible=bool(on)) for _ in SIDES)

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
        self,
        choice: str,
        owner_value: Any,
        battle_id: str | None,
        rounds: list[RoundDict],
        board: tuple[str, bool] = (BOARD_VIEWS[0], False),
        request: gr.Request | None = None,
    ) -> tuple[Any, ...]:
        """Record the vote, reveal the names (every round of the battle), refresh the leaderboard (as
        its view and style switch are set: `board`)."""
        try:
            owner = check_owner_id(owner_value)
            if not battle_id or not rounds:
                raise HistoryError("Send a prompt to both models first, then vote.")
            trusted = self.ctx.settings.limits.trust_forwarded
            address = None if request is None else request_address(request, trust_forwarded=trusted)
            voted = self.arena.vote(owner, battle_id, choice, address=address).to_dict()
            rounds = [self.arena.load(owner, str(r["battle_id"])).to_dict() for r in rounds[:-1]] + [voted]
        except PlaygroundError as exc:
            return (
                *self.screen(battle_id, rounds, notice=f"⚠ {exc}", keep_prompt=True),
                *self.board_outputs(*board),
            )
        notice = show.reveal_text(voted)
        left = self.arena.votes_left(owner)
        if left is not None:
            notice += f" You have {left} vote(s) left today."
        return (
            *self.screen(battle_id, rounds, notice=notice, chart=True, keep_prompt=True),
            *self.board_outputs(*board),
        )

    def board_outputs(self, view: str = BOARD_VIEWS[0], style: bool = False) -> tuple[Any, ...]:
        board = self.arena.leaderboard(style=bool(style))
        table = board.models if view == BOARD_VIEWS[1] else board.sides
        return show.ratings_frame(table), show.win_rate_frame(table), show.counts_line(board, table)

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
        """Lay the tab out and wire its events (arena_layout.py)."""
        return ArenaLayout(self).build(owner)
