"""`python -m playground fidelity`: how much a variant of a model changes it, token by token.

    python -m playground fidelity -m smollm2-135m-instruct@onnx -m smollm2-135m-instruct@transformers --text FILE
    python -m playground fidelity -m A -m REFERENCE --text FILE --json

The first model is compared with the second, the reference: one text (a file, `-` for stdin) is fed
through both. A table of every token (its KL divergence from the reference, each variant's most likely
token) and the totals, or with --json one object: `mean_kl`, `same_top_percent`, `perplexity_model`,
`perplexity_reference`, `tokens` (per token).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..text import valid_bytes
from .compute import Fidelity
from .service import MAX_TOKENS, measure

if TYPE_CHECKING:
    from ..settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `fidelity` command to the CLI."""
    parser = subparsers.add_parser(
        "fidelity", help="feed one text through a model and a reference variant: KL and agreement per token"
    )
    parser.add_argument(
        "-m", "--model", action="append", default=[], help="the model, then the reference (-m A -m REFERENCE)"
    )
    parser.add_argument(
        "--text", required=True, metavar="FILE", help="the text to feed through both (- for stdin)"
    )
    parser.add_argument(
        "--limit", type=int, default=MAX_TOKENS, help=f"at most this many tokens (default {MAX_TOKENS})"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=cmd_fidelity)


def read_text(source: str) -> str:
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    return valid_bytes(data)


def cmd_fidelity(args: argparse.Namespace, settings: Settings) -> int:
    from ..context import AppContext

    if len(args.model) != 2:
        raise ConfigError(f"fidelity takes two models (-m A -m REFERENCE), got {len(args.model)}.")
    text = read_text(args.text)
    ctx = AppContext.create(settings)
    try:
        result = measure(ctx.registry, args.model[0], args.model[1], text, limit=args.limit)
    finally:
        ctx.close()
    print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) if args.json else table(result))
    return 0


def table(result: Fidelity) -> str:
    """Every token, then the totals."""
    lines = [f"{'#':>4}  {'token':<16} {'KL':>8}  {'model top':<16} {'reference top':<16}"]
    for row in result.tokens:
        mark = " " if row.same_top else "≠"
        lines.append(
            f"{row.position:>4}  {row.token!r:<16.16} {row.kl:>8.4f} {mark}{row.top_model!r:<16.16} "
            f"{row.top_reference!r:<16.16}"
        )
    lines += [
        "",
        f"model:      {result.model} (perplexity {result.perplexity_model:.2f})",
        f"reference:  {result.reference} (perplexity {result.perplexity_reference:.2f})",
        f"mean KL {result.mean_kl:.4f} nats (largest {result.max_kl:.4f}); same top token at "
        f"{100 * result.same_top:.1f}% of {len(result.tokens)} positions",
    ]
    if result.note:
        lines.append(result.note)
    return "\n".join(lines)
