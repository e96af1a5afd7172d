"""Every event a visitor can trigger, classified: answering, work or trivial.

- **answering**: writes an answer (a chat, an arena round, an evaluation run, `/chat`). The gate admits
  these by the visitor's and the address's limits and the providers' lines (admission.py).
- **work**: costs the server more than a glance (renders a prompt through a chat template, writes
  code, reads or writes the history, imports, exports, lists providers, computes a leaderboard). Each
  is queued in one shared pool of WORK_POOL at a time, so no amount of it takes an answer's place, and
  the gate admits at most WORK_PER_SESSION of a session's and WORK_PER_ADDRESS of an address's at once.
  Their input is bounded before any work starts: the request body at the door (gate.py), a question's
  length by PLAYGROUND_PROMPT_CHARS, an import by PLAYGROUND_IMPORT_MB.
- **trivial**: a toggle, a card, a stop: runs at once outside the queue and costs nothing that grows
  with its input.

Handlers are named by module and qualified name; a lambda by where it is defined and whether it is
queued. `tests/test_events.py` lists the app's events and fails on one that is not classified here, so a
new event cannot slip past.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    ANSWERING = "answering"
    WORK = "work"
    TRIVIAL = "trivial"


WORK_POOL = 2  # work events running at once, all of them together
WORK_POOL_ID = "work"
WORK_PER_SESSION = 4  # a session's work events waiting or running (a page load starts 3 at once)
WORK_PER_ADDRESS = 12  # an address's

_UI = "playground.ui."
ANSWERING = frozenset(
    {
        f"{_UI}chat_region.ChatRegion.respond",
        f"{_UI}chat_region.ChatRegion.branch",
        f"{_UI}arena_tab.ArenaTab.play",
        f"{_UI}arena_tab.ArenaTab.regenerate",
        f"{_UI}evaluate_tab.EvaluateTab.run",
        f"{_UI}evaluate_tab.EvaluateTab.resume",
        f"{_UI}instruct.InstructTab.api_chat",
        f"{_UI}instruct.InstructTab.api_chat_tokens",
        f"{_UI}instruct.InstructTab.api_chat_branch",
        f"{_UI}arena_fidelity.FidelityPanel.compare",  # no answer written, but both models run
    }
)
WORK = frozenset(
    {
        f"{_UI}region_tools.RegionTools.get_code",
        f"{_UI}region_tools.RegionTools.open_prompt",
        f"{_UI}region_tools.RegionTools.expand_prompt",
        f"{_UI}region_tools.RegionTools.refresh_prompt",
        f"{_UI}chat_region.ChatRegion.regenerate",
        f"{_UI}chat_region.ChatRegion.switch_branch",
        f"{_UI}region_tools.RegionTools.set_key",
        f"{_UI}history_tab.HistoryTab.delete",
        f"{_UI}history_tab.HistoryTab.delete_all",
        f"{_UI}history_tab.HistoryTab.import_file",
        f"{_UI}history_tab.HistoryTab.on_load",
        f"{_UI}history_tab.HistoryTab.browser_copy",
        f"{_UI}history_tab.HistoryTab.refresh",
        f"{_UI}history_tab.HistoryTab.rename",
        f"{_UI}history_tab.HistoryTab.select",
        f"{_UI}history_tab.HistoryTab.open",
        f"{_UI}history_tab.HistoryTab.wire.<locals>.<lambda>",  # the exports
        f"{_UI}evaluate_tab.EvaluateTab.list_runs",
        f"{_UI}evaluate_tab.EvaluateTab.reopen",
        f"{_UI}evaluate_tab.EvaluateTab.wire.<locals>.<lambda>",  # the exports
        f"{_UI}arena_tab.ArenaTab.board_outputs",
        f"{_UI}arena_tab.ArenaTab.open_link",
        f"{_UI}arena_layout.ArenaLayout.wire_rest.<locals>.<lambda>",  # the exports
        f"{_UI}arena_layout._voter.<locals>.vote",
        f"{_UI}providers_tab.ProvidersTab.refresh",
        f"{_UI}models_tab.ModelsTab.current",
        f"{_UI}models_tab.delete",
        f"{_UI}models_tab.unload",
        f"{_UI}models_tab.convert",
        f"{_UI}models_tab.download",
        f"{_UI}history_tab.VisitorIdentity.load",
    }
)
TRIVIAL = frozenset(
    {
        f"{_UI}chat_region.ChatRegion.add_question",
        f"{_UI}chat_parts.attach_photo",
        f"{_UI}region_tools.RegionTools.collapse_prompt",
        f"{_UI}region_tools.RegionTools.describe_model",
        f"{_UI}chat_region.ChatRegion.edit_last",
        f"{_UI}region_tools.RegionTools.forget_code",
        f"{_UI}chat_region.ChatRegion.new_conversation",
        f"{_UI}region_tools.RegionTools.preset",
        f"{_UI}chat_region.ChatRegion.stop",
        f"{_UI}region_tools.RegionTools.toggle_tokens",
        f"{_UI}arena_tab.ArenaTab.toggle_tokens",
        f"{_UI}region_tools.RegionTools.pick_format",
        f"{_UI}moe_tab.MoeTab.describe_extra",
        f"{_UI}vision_tab.VisionTab.describe_extra",
        f"{_UI}arena_tab.ArenaTab.choose_preset",
        f"{_UI}arena_fidelity.FidelityPanel.show",
        f"{_UI}arena_tab.ArenaTab.new_round",
        f"{_UI}arena_tab.ArenaTab.stop_a",
        f"{_UI}arena_tab.ArenaTab.stop_b",
        f"{_UI}arena_tab.ArenaTab.stop_both",
        f"{_UI}arena_layout.ArenaLayout.wire_rest.<locals>.<lambda>",  # show/hide a row
        f"{_UI}evaluate_tab.EvaluateTab.stop",
        f"{_UI}models_tab.ModelsTab.current",
        "gradio.helpers.Examples.create.<locals>.load_example",
    }
)


def handler_name(fn: Any) -> str | None:
    """`module.qualname` of an event's Python function (a partial's own), None for a JS-only event."""
    if fn is None:
        return None
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__func__", fn)  # a bound method: its function
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def kind_of(name: str | None, queued: bool) -> EventKind | None:
    """The class of a handler (None: not classified). A queued event that is listed as trivial and as
    work (lambdas defined in one place) is work; an unqueued one is trivial only if listed so."""
    if name is None:
        return EventKind.TRIVIAL  # runs in the browser
    if name in ANSWERING:
        return EventKind.ANSWERING
    if queued and name in WORK:
        return EventKind.WORK
    if not queued and name in TRIVIAL:
        return EventKind.TRIVIAL
    return None


def classify(fns: Mapping[int, Any]) -> dict[int, EventKind | None]:
    """Every event of a Blocks (`demo.fns`), by function id."""
    return {fn_id: kind_of(handler_name(fn.fn), bool(fn.queue)) for fn_id, fn in fns.items()}


def pool_work(fns: Mapping[int, Any]) -> dict[int, EventKind]:
    """Put every work event in the shared work pool (an unclassified one counts as work and is queued);
    the classes, by function id."""
    kinds: dict[int, EventKind] = {}
    for fn_id, kind in classify(fns).items():
        if kind is None or kind == EventKind.WORK:
            fn = fns[fn_id]
            fn.queue = True
            fn.concurrency_id, fn.concurrency_limit = WORK_POOL_ID, WORK_POOL
            kind = EventKind.WORK
        kinds[fn_id] = kind
    return kinds
