"""`python -m playground eval`: a prompt set through several models, its scores, speed and memory, and a
card that repeats it.

    python -m playground eval -m smollm2-135m-instruct@onnx -m smollm2-135m-instruct@transformers --set facts
    python -m playground eval ... --judge smollm2-135m-instruct@onnx --judge-mode compare --json
    python -m playground eval ... --save-card run.json      # then: eval --repeat run.json
    python -m playground eval --resume RUN                   # a stopped or interrupted run goes on

Progress goes to stderr, the result to stdout (a table, or with --json the card: `models` with `score`,
`ci`, `ttft_s` p50/p95, `prompt_tokens_per_s`, `tokens_per_s`, `load_s`, `peak_memory_bytes`; `items`
with every answer and check). Ctrl-C stops the run (the engine too); `--resume` goes on from there.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionsError
from ..options import GenerationOptions
from . import sets
from .card import card, differences, read, to_json, to_markdown
from .scores import report
from .service import JUDGE_MODES, EvalService, Judge, Progress

if TYPE_CHECKING:
    from ..settings import Settings

OWNER = "local-cli"  # the runs of this machine's command line, apart from any visitor's


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `eval` command to the CLI."""
    parser = subparsers.add_parser(
        "eval", help="run a prompt set through several models: scores, speed, a card"
    )
    parser.add_argument("-m", "--model", action="append", default=[], help="a model (2 to 6: -m A -m B ...)")
    parser.add_argument(
        "--set", default="facts", help=f"a bundled set ({', '.join(sets.bundled())}) or a file"
    )
    parser.add_argument("--judge", help="a model that grades (or compares) the answers")
    parser.add_argument("--judge-mode", default="grade", choices=JUDGE_MODES)
    parser.add_argument("--temperature", type=float, default=0.0, help="default 0: greedy, repeatable")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json", action="store_true", help="print the card as JSON")
    parser.add_argument("--save-card", metavar="FILE", help="write the card (JSON) to FILE")
    parser.add_argument("--resume", metavar="RUN", help="go on with a stopped or interrupted run")
    parser.add_argument("--repeat", metavar="FILE", help="run a card again and report what differs")
    parser.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from ..context import AppContext

    ctx = AppContext.create(settings)
    try:
        before = read(Path(args.repeat)) if args.repeat else None
        run_id = args.resume or _start(ctx.evals, args, before).id
        status = _run(ctx.evals, run_id)
        data = card(report(ctx.history, OWNER, run_id))
    finally:
        ctx.close()
    if args.save_card:
        Path(args.save_card).write_text(to_json(data), encoding="utf-8")
    print(to_json(data) if args.json else to_markdown(data).split("\n## Answers")[0])
    if before is not None:
        changed = differences(before, data)
        print("\n".join(changed) if changed else "Repeated: the same answers and scores.", file=sys.stderr)
    if status != "done":
        print(f"[{status}: `python -m playground eval --resume {run_id}` goes on]", file=sys.stderr)
    return 0 if status == "done" else 130 if status == "stopped" else 1


def _start(service: EvalService, args: argparse.Namespace, before: dict[str, Any] | None) -> Any:
    if before is not None:  # the card's models, set and settings, exactly
        prompt_set = sets.parse(
            "\n".join(
                sets.EvalItem.model_validate(i).model_dump_json(by_alias=True) for i in before["set"]["items"]
            ),
            name=before["set"]["name"],
        )
        judge = Judge(**before["judge"]) if before.get("judge") else None
        options = GenerationOptions.model_validate(before["options"])
        return service.start(OWNER, [m["id"] for m in before["models"]], prompt_set, options, judge)
    if not args.model:
        raise InvalidOptionsError("Name the models to evaluate: -m A -m B (2 to 6), or --resume RUN.")
    options = GenerationOptions.parse(
        temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    judge = Judge(args.judge, args.judge_mode) if args.judge else None
    return service.start(OWNER, args.model, sets.load(args.set), options, judge)


def _run(service: EvalService, run_id: str) -> str:
    """The run to its end, a line of progress per answer on stderr; Ctrl-C stops it cleanly."""
    previous = signal.getsignal(signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    if main:
        signal.signal(signal.SIGINT, lambda *_: service.stop(None))
    status = "interrupted"
    try:
        for step in service.run(OWNER, run_id):
            _show(step)
            status = step.status
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    return status


def _show(step: Progress) -> None:
    if step.item < 0:
        return
    mark = "" if step.verdict is None else (" ✓" if step.verdict.passed else f" ✗ {step.verdict.detail}")
    said = " ".join(step.text.split())[:60]
    print(
        f"[{step.done}/{step.total}] {step.model} #{step.item + 1}{mark} {step.note} {said!r}",
        file=sys.stderr,
        flush=True,
    )
