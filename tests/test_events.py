"""Every event a visitor can trigger is classified (playground/public/events.py): answering, work or
trivial. The app's events are listed from the Blocks, public and private, so a new event that is not
classified fails here; work events share one small pool (they never take an answer's place) and trivial
ones run outside the queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.context import AppContext
from playground.public.events import WORK_POOL, WORK_POOL_ID, EventKind, classify, handler_name
from playground.ui.app import answering_events, build_app, serve_options
from tests.support import make_settings


@pytest.mark.parametrize("public", ["1", "0"])
def test_every_event_of_the_app_is_classified_and_pooled_by_its_class(tmp_path: Path, public: str) -> None:
    ctx = AppContext.create(
        make_settings(tmp_path / "data", PLAYGROUND_PUBLIC=public, PLAYGROUND_BROWSER_HISTORY="1")
    )
    try:
        demo = build_app(ctx)
        kinds = classify(demo.fns)
        unclassified = [
            f"{handler_name(demo.fns[i].fn)} (queued={demo.fns[i].queue})"
            for i, k in kinds.items()
            if k is None
        ]
        assert not unclassified, f"classify these in playground/public/events.py: {unclassified}"
        answering = {i for i, k in kinds.items() if k == EventKind.ANSWERING}
        assert answering == set(answering_events(demo)), "the gate admits exactly the answering events"
        assert len(answering) >= 12 and sum(k == EventKind.WORK for k in kinds.values()) >= 20
        serve_options(demo, ctx)
        for fn_id, kind in kinds.items():
            fn = demo.fns[fn_id]
            if kind == EventKind.WORK:
                assert fn.queue and (fn.concurrency_id, fn.concurrency_limit) == (WORK_POOL_ID, WORK_POOL)
            elif kind == EventKind.TRIVIAL:
                assert not fn.queue or fn.fn is None, handler_name(fn.fn)
            else:
                assert fn.concurrency_id != WORK_POOL_ID
    finally:
        ctx.close()
