"""The Providers tab: each engine and endpoint, whether it is configured and reachable, its models."""

from __future__ import annotations

import gradio as gr

from ..context import AppContext
from ..providers.cloud import ProviderStatus, provider_statuses
from . import widgets

HEADERS = ["Provider", "Kind", "Address", "Key", "Configured", "Reachable", "Models", "Notes"]
SHOWN_MODELS = 6


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

    def rows(self, refresh: bool = False) -> list[list[str]]:
        return [
            status_row(s) for s in provider_statuses(self.ctx.registry.providers.values(), refresh=refresh)
        ]

    def refresh(self, model_id: str) -> tuple[list[list[str]], gr.Dropdown]:
        """Ask every endpoint again for its models, and update the model pickers with what changed."""
        rows = self.rows(refresh=True)
        return rows, gr.Dropdown(choices=widgets.model_choices(self.ctx.registry), value=model_id)

    def build(self, model_picker: gr.Dropdown) -> None:
        gr.Markdown(
            "Local engines and the servers and cloud endpoints configured through the environment or "
            "`.env` (see `.env.example` and docs/providers.md). Keys are shown only as the name of their "
            "variable. `python -m playground models` lists the same models."
        )
        table = gr.Dataframe(
            self.rows(), headers=HEADERS, interactive=False, wrap=True, elem_id="providers-list"
        )
        refresh = gr.Button("Refresh (ask every endpoint again)", elem_id="providers-refresh")
        refresh.click(
            self.refresh, model_picker, [table, model_picker], api_visibility="private", concurrency_limit=1
        )
