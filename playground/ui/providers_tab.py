"""The Providers tab: each engine and endpoint, whether it is configured and reachable, its models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from ..context import AppContext
from ..providers_service import ProviderStatus, SharedRefresh, statuses
from ..types import Capability
from . import widgets

HEADERS = ["Provider", "Kind", "Address", "Key", "Configured", "Reachable", "Models", "Notes"]
SHOWN_MODELS = 6
COLUMN_WIDTHS: list[str | int] = [
    "12%",
    "7%",
    "14%",
    "15%",
    "8%",
    "8%",
    "16%",
    "20%",
]  # all fit: long cells wrap


def status_row(status: ProviderStatus) -> list[str]:
    """One row; a key is shown only as its variable's name and whether it is set, never its value."""
    key = "" if status.key_env is None else f"{status.key_env} ({'set' if status.key_set else 'not set'})"
    reachable = {True: "yes", False: "no", None: "not checked"}[status.reachable]
    models = ", ".join(m.rsplit("@", 1)[0] for m in status.models[:SHOWN_MODELS])
    if len(status.models) > SHOWN_MODELS:
        models += f" … ({len(status.models)} in all)"
    notes = " ".join(n for n in (status.error, status.note) if n)
    configured = "yes" if status.configured else "no"
    return [status.label, status.kind, status.url, key, configured, reachable, models, notes]


class ProvidersTab:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        # Public mode: one round of requests per PLAYGROUND_REFRESH_INTERVAL_S, shared by every visitor
        self.shared = SharedRefresh(ctx.registry, ctx.settings.limits.refresh_interval_s)

    def rows(self) -> list[list[str]]:
        return [status_row(s) for s in statuses(self.ctx.registry)]

    def refresh(self, capabilities: Sequence[Capability], *model_ids: str) -> tuple[Any, ...]:
        """Ask every endpoint again for its models (at most once per interval in public mode, for every
        visitor together), and update the model pickers (one per capability listed) with what changed."""
        refreshed = self.shared.refresh()
        rows = [status_row(s) for s in refreshed.statuses]
        pickers = [
            gr.Dropdown(choices=widgets.model_choices(self.ctx.registry, capability), value=model_id)
            for capability, model_id in zip(capabilities, model_ids, strict=True)
        ]
        return (rows, refreshed.note(self.shared.interval_s), *pickers)

    def build(self) -> ProvidersUI:
        """Lay the tab out; the app's builder wires Refresh to every model picker of the page."""
        gr.Markdown(
            "Local engines and the servers and cloud endpoints configured through the environment or "
            "`.env` (see `.env.example` and docs/providers.md). Keys are shown only as the name of their "
            "variable. `python -m playground models` lists the same models."
        )
        table = gr.Dataframe(
            self.rows(),
            headers=HEADERS,
            interactive=False,
            wrap=True,
            column_widths=COLUMN_WIDTHS,
            max_height=1000,
            elem_id="providers-list",
        )
        refresh = gr.Button("Refresh (ask every endpoint again)", elem_id="providers-refresh")
        checked = gr.Markdown(elem_id="providers-checked")
        return ProvidersUI(table, refresh, checked)

    def wire(self, ui: ProvidersUI, pickers: Sequence[tuple[gr.Dropdown, Capability]]) -> None:
        """Refresh updates the table and every picker given (the chat tabs' and the Arena's)."""
        components = [picker for picker, _ in pickers]
        ui.refresh.click(
            partial(self.refresh, [capability for _, capability in pickers]),
            components,
            [ui.table, ui.checked, *components],
            api_visibility="private",
            concurrency_limit=1,
        )


@dataclass
class ProvidersUI:
    table: gr.Dataframe
    refresh: gr.Button
    checked: gr.Markdown
