"""The Arena tab's layout: small render methods that each return their components as a typed group,
then one method that wires every event to the tab's handlers (arena_tab.py).

    ArenaLayout(tab).build(owner) -> ArenaUI
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr

from ..arena import sync
from . import arena_display as show
from . import widgets
from .arena_display import SIDES
from .arena_fidelity import FidelityPanel
from .delta import delta_html

if TYPE_CHECKING:
    from .arena_tab import ArenaTab

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
VOTES = (("a", "← A is better"), ("b", "B is better →"), ("tie", "Tie"), ("both_bad", "Both are bad"))
BOARD_VIEWS = ("Per side (model and engine)", "Per model")


@dataclass
class ArenaUI:
    """What the app's builder wires beyond the tab: the page-load link to a preset, the pickers that
    Providers' Refresh updates, the events that end with an answer."""

    open_link: Any
    link_outputs: list[Any]
    answered: list[Any]
    pickers: list[gr.Dropdown]
    measured: list[Any] = field(default_factory=list)  # Compare token by token: both models run


@dataclass
class Choice:
    mode: gr.Radio
    preset: gr.Dropdown
    note: gr.Markdown
    row: gr.Row
    model_a: gr.Dropdown
    model_b: gr.Dropdown


@dataclass
class Pane:
    head: gr.Markdown
    chat: gr.Chatbot
    status: gr.Markdown
    stop: gr.Button
    tokens: gr.HTML  # the side's answer as its tokens (shown while Token view is ticked)


@dataclass
class Prompting:
    notice: gr.Markdown
    prompt: gr.Textbox
    send: gr.Button
    stop_both: gr.Button
    regenerate: gr.Button
    new: gr.Button
    token_view: gr.Checkbox  # both panes' answers as their tokens, with probabilities and alternatives


@dataclass
class Settings:
    """Each pane's system prompt and parameters (B's hidden while "Same for both" is ticked)."""

    same: gr.Checkbox
    columns: dict[str, gr.Column]
    values: dict[str, list[Any]]  # per side: the system prompt, then widgets.OPTION_NAMES' components


@dataclass
class Board:
    view: gr.Radio
    style: gr.Checkbox
    counts: gr.Markdown
    ratings: gr.Dataframe
    win_rates: gr.Dataframe
    refresh: gr.Button

    @property
    def outputs(self) -> list[Any]:
        return [self.ratings, self.win_rates, self.counts]

    @property
    def inputs(self) -> list[Any]:
        return [self.view, self.style]


@dataclass
class Export:
    markdown: gr.Button
    json: gr.Button
    download: gr.File
    status: gr.Markdown


@dataclass
class ArenaParts:
    battle: gr.State
    rounds: gr.State
    choice: Choice
    panes: dict[str, Pane]
    prompting: Prompting
    votes: list[gr.Button]
    charts: list[gr.BarPlot]
    settings: Settings
    board: Board
    export: Export

    @property
    def outputs(self) -> list[Any]:
        """What a round's handlers return, in `arena_tab.OUTPUT_NAMES`' order (the tab's `screen`)."""
        a, b = self.panes["a"], self.panes["b"]
        return [
            self.battle, self.rounds, a.chat, b.chat, a.head, b.head, a.status, b.status,
            self.prompting.notice, self.prompting.prompt, *self.votes, *self.charts, a.tokens, b.tokens,
        ]  # fmt: skip


class ArenaLayout:
    """Lays out the Arena tab and wires its events to the tab's handlers."""

    def __init__(self, tab: ArenaTab) -> None:
        self.tab = tab

    def build(self, owner: gr.State) -> ArenaUI:
        gr.Markdown(
            "One prompt, two models, side by side: time to first token and speed live per pane, then your "
            "vote. In **blind** mode the models are named only after you vote."
        )
        choice = self.render_choice()
        with gr.Row():
            panes = {name: self.render_pane(name) for name in SIDES}
        parts = ArenaParts(
            gr.State(None),
            gr.State([]),
            choice,
            panes,
            self.render_prompting(),
            self.render_votes(),
            self.render_charts(),
            self.render_settings(),
            self.render_board(),
            self.render_export(),
        )
        measured = FidelityPanel(self.tab.ctx).build(choice.mode, choice.model_a, choice.model_b)
        answered = self.wire(owner, parts)
        link = [choice.mode, choice.preset, choice.model_a, choice.model_b, choice.note]
        return ArenaUI(self.tab.open_link, link, answered, [choice.model_a, choice.model_b], [measured])

    # Render: each returns its components

    def render_choice(self) -> Choice:
        tab = self.tab
        with gr.Row():
            mode = gr.Radio(
                [show.NAMED, show.BLIND], value=show.NAMED, label="Mode", elem_id="arena-mode", scale=2
            )
            preset = gr.Dropdown(
                tab.preset_choices(), value="", label="Preset", elem_id="arena-preset", scale=2
            )
        note = gr.Markdown(elem_id="arena-preset-note")
        with gr.Row() as row:
            model_a = gr.Dropdown(
                tab.choices, value=tab.default_model, label="Model A", elem_id="arena-model-a"
            )
            model_b = gr.Dropdown(tab.choices, value=tab.default_b, label="Model B", elem_id="arena-model-b")
        return Choice(mode, preset, note, row, model_a, model_b)

    def render_pane(self, name: str) -> Pane:
        with gr.Column():
            head = gr.Markdown(show.header(None, name), elem_id=f"arena-head-{name}")
            chat = gr.Chatbot(elem_id=f"arena-chat-{name}", height=320, show_label=False, buttons=["copy"])
            status = gr.Markdown(elem_id=f"arena-metrics-{name}", elem_classes=["chat-notice"])
            stop = gr.Button(f"Stop {name.upper()}", size="sm", variant="stop", elem_id=f"arena-stop-{name}")
            tokens = delta_html(visible=False, elem_id=f"arena-tokens-{name}", elem_classes=["token-view"])
        return Pane(head, chat, status, stop, tokens)

    def render_prompting(self) -> Prompting:
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
            token_view = gr.Checkbox(False, label="Token view", elem_id="arena-token-view")
        return Prompting(notice, prompt, send, stop_both, regenerate, new, token_view)

    def render_votes(self) -> list[gr.Button]:
        with gr.Row():
            return [gr.Button(label, interactive=False, elem_id=f"arena-vote-{key}") for key, label in VOTES]

    def render_charts(self) -> list[gr.BarPlot]:
        with gr.Row():
            return [
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

    def render_settings(self) -> Settings:
        initial = widgets.recommended(self.tab.ctx.registry.resolve(self.tab.default_model))
        with gr.Accordion("System prompts and parameters", open=False):
            same = gr.Checkbox(True, label="Same for both", elem_id="arena-same")
            values: dict[str, list[Any]] = {}
            columns = {}
            with gr.Row():
                for name in SIDES:
                    with gr.Column(visible=name == "a") as column:
                        gr.Markdown(f"**{'A (and B, when the same)' if name == 'a' else 'B'}**")
                        system = gr.Textbox(label="System prompt", lines=2, elem_id=f"arena-system-{name}")
                        options = widgets.option_inputs(f"arena-{name}", initial).components
                    values[name], columns[name] = [system, *options], column
        return Settings(same, columns, values)

    def render_board(self) -> Board:
        ctx = self.tab.ctx
        with gr.Accordion("Leaderboard", open=True):
            with gr.Row():
                view = gr.Radio(
                    list(BOARD_VIEWS), value=BOARD_VIEWS[0], show_label=False, elem_id="arena-board-view"
                )
                style = gr.Checkbox(
                    label="Style control",
                    info="Hold answer length and Markdown equal, as LMArena does: who wins on content alone",
                    elem_id="arena-board-style",
                )
            first = self.tab.board_outputs()
            kept = sync.reset_notice(bool(ctx.settings.space_id), ctx.arena_sync is not None)
            if kept:  # on a Space without PLAYGROUND_DATASET
                gr.Markdown(kept, elem_id="arena-board-reset", elem_classes=["chat-notice"])
            counts = gr.Markdown(first[2], elem_id="arena-board-counts")
            ratings = gr.Dataframe(first[0], interactive=False, elem_id="arena-board", wrap=True)
            win_rates = gr.Dataframe(
                first[1], interactive=False, label="Win rate (row against column)", elem_id="arena-win-rates"
            )
            refresh = gr.Button("Refresh", size="sm", elem_id="arena-board-refresh")
        return Board(view, style, counts, ratings, win_rates, refresh)

    def render_export(self) -> Export:
        with gr.Accordion("Export this battle (with the code that repeats each side)", open=False):
            with gr.Row():
                markdown = gr.Button("Markdown", size="sm", elem_id="arena-export-md")
                as_json = gr.Button("JSON", size="sm", elem_id="arena-export-json")
            download = gr.File(label="Export", interactive=False, elem_id="arena-export", height=80)
            status = gr.Markdown(elem_id="arena-export-status")
        return Export(markdown, as_json, download, status)

    # Wire: every event, in one place

    def wire(self, owner: gr.State, parts: ArenaParts) -> list[Any]:
        """Connect the components to the tab's handlers; the events that end with an answer."""
        tab, choice, prompting = self.tab, parts.choice, parts.prompting
        outputs = parts.outputs
        sent = [owner, parts.battle, parts.rounds, choice.mode, choice.preset, choice.model_a, choice.model_b]
        sent += [
            prompting.prompt,
            parts.settings.same,
            *parts.settings.values["a"],
            *parts.settings.values["b"],
            prompting.token_view,
        ]
        play: dict[str, Any] = {
            "fn": tab.play,
            "inputs": sent,
            "outputs": outputs,
            "concurrency_limit": 4,
            "trigger_mode": "once",
            **PRIVATE,
        }
        answered = [
            prompting.prompt.submit(**play),
            prompting.send.click(**play),
            prompting.regenerate.click(
                tab.regenerate,
                [owner, parts.battle, parts.rounds, prompting.token_view],
                outputs,
                trigger_mode="once",
                **PRIVATE,
            ),
        ]
        parts.panes["a"].stop.click(tab.stop_a, None, None, queue=False, **PRIVATE)
        parts.panes["b"].stop.click(tab.stop_b, None, None, queue=False, **PRIVATE)
        prompting.stop_both.click(tab.stop_both, None, None, queue=False, **PRIVATE)
        prompting.new.click(tab.new_round, None, outputs, queue=False, **PRIVATE)
        views = [parts.panes[name].tokens for name in SIDES]
        prompting.token_view.change(tab.toggle_tokens, prompting.token_view, views, queue=False, **PRIVATE)
        self.wire_rest(owner, parts)
        return answered

    def wire_rest(self, owner: gr.State, parts: ArenaParts) -> None:
        """The vote, the leaderboard, the export and the choice of sides."""
        tab, choice, board, export = self.tab, parts.choice, parts.board, parts.export
        for (key, _), button in zip(VOTES, parts.votes, strict=True):
            button.click(
                _voter(tab, key),
                [owner, parts.battle, parts.rounds, *board.inputs],
                [*parts.outputs, *board.outputs],
                **PRIVATE,
            )
        for changed in (board.view.change, board.style.change, board.refresh.click):
            changed(tab.board_outputs, board.inputs, board.outputs, **PRIVATE)
        for kind, button in (("md", export.markdown), ("json", export.json)):
            button.click(
                lambda o, b, k=kind: tab.export(k, o, b),
                [owner, parts.battle],
                [export.download, export.status],
                **PRIVATE,
            )
        choice.preset.change(
            tab.choose_preset,
            choice.preset,
            [choice.model_a, choice.model_b, choice.note],
            queue=False,
            **PRIVATE,
        )
        choice.mode.change(
            lambda m: gr.Row(visible=m == show.NAMED), choice.mode, choice.row, queue=False, **PRIVATE
        )
        parts.settings.same.change(
            lambda s: gr.Column(visible=not s),
            parts.settings.same,
            parts.settings.columns["b"],
            queue=False,
            **PRIVATE,
        )


def _voter(tab: ArenaTab, key: str) -> Callable[..., tuple[Any, ...]]:
    """The handler of one vote button (Gradio passes the request: the address counts toward the cap)."""

    def vote(
        owner: Any, battle: Any, rounds: Any, view: str, style: bool, request: gr.Request
    ) -> tuple[Any, ...]:
        return tab.vote(key, owner, battle, rounds, board=(view, style), request=request)

    return vote
