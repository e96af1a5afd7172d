"""The command line: `python -m playground models|chat|code|compare|fidelity|convert|download|local|prepare|serve|space`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from .errors import ConfigError, InvalidOptionsError, PlaygroundError
from .options import GenerationOptions
from .settings import Settings, _default_data_dir
from .text import valid_bytes
from .types import Capability, FinishReason, Message, Metrics

Handler = Callable[[argparse.Namespace, Settings], int]

FINISH_NOTES = {
    FinishReason.CANCELLED: "[stopped]",
    FinishReason.INTERRUPTED: "[interrupted: the connection or the engine died mid-answer; above is what arrived]",
    FinishReason.LENGTH: "[reached --max-new-tokens]",
}
EXIT_CODES = {FinishReason.CANCELLED: 130, FinishReason.INTERRUPTED: 1, FinishReason.ERROR: 1}
MAX_MODEL_REF = 4096  # PATH_MAX: no model id or path is longer
LOG_NAME = "cli-errors.log"


def text_arg(value: str) -> str:
    """Text from the command line as valid Unicode: bytes that are not UTF-8 (which Python keeps as
    lone surrogates) become U+FFFD, and the rest is kept."""
    return valid_bytes(os.fsencode(value))


def model_ref(value: str) -> str:
    """A model id, catalog key or path (kept as given: a path may hold any bytes), of a sane length."""
    if not value.strip():
        raise argparse.ArgumentTypeError("a model id, catalog key or path cannot be empty")
    if len(value) > MAX_MODEL_REF:
        raise argparse.ArgumentTypeError(
            f"a model id or path is at most {MAX_MODEL_REF} characters, got {len(value)}: "
            "`python -m playground models` lists the ids"
        )
    return value


def port_arg(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number in 1-65535, got {value!r}")
    return port


def _context(settings: Settings):  # type: ignore[no-untyped-def]
    from .context import AppContext

    return AppContext.create(settings)


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    ctx = _context(settings)
    rows = ctx.registry.rows()
    if args.json:
        print(json.dumps([_row_json(r.spec, r.availability) for r in rows], indent=2))
        return 0
    width = max(len(r.spec.id) for r in rows)
    for row in rows:
        caps = ",".join(sorted(row.spec.capabilities))
        state = "ready" if row.availability.available else f"unavailable: {row.availability.reason}"
        print(f"{row.spec.id:<{width}}  {row.spec.provider:<12} {caps:<15} {state}")
    return 0


def _row_json(spec, availability) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {
        "id": spec.id,
        "name": spec.name,
        "provider": spec.provider,
        "family": spec.family,
        "capabilities": sorted(spec.capabilities),
        "context_window": spec.context_window,
        "available": availability.available,
        "reason": availability.reason,
    }


def _request(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The one question `chat` asks and `code` writes the script for."""
    from .answers import Request

    options = GenerationOptions.parse(
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        repetition_penalty=args.repetition_penalty,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        stop=args.stop,
        num_crops=args.num_crops,
        logprobs=getattr(args, "logprobs", None),
        response_format=_response_format(args),
    )
    if not args.prompt.strip() and not args.image:  # as /chat refuses it
        raise InvalidOptionsError(
            'The question is empty: give it after the options, e.g. python -m playground chat "What is an SLM?"'
        )
    messages = [Message("system", args.system)] if args.system else []
    messages.append(Message("user", args.prompt, images=tuple(str(Path(i).resolve()) for i in args.image)))
    return Request(args.model, messages, options, provider=args.provider)


def _response_format(args: argparse.Namespace) -> dict[str, str] | None:
    """--json-schema FILE or --regex PATTERN as the options' response format (None: plain text)."""
    schema, pattern = getattr(args, "json_schema", None), getattr(args, "regex", None)
    if schema and pattern:
        raise InvalidOptionsError("Give --json-schema or --regex, not both.")
    if pattern:
        return {"kind": "regex", "pattern": pattern}
    if not schema:
        return None
    try:
        text = Path(schema).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidOptionsError(f"Cannot read the schema file {schema}: {exc}") from None
    return {"kind": "json_schema", "schema_text": text}


def cmd_code(args: argparse.Namespace, settings: Settings) -> int:
    """Print the script the page's Get code writes for this one question."""
    from .codegen import code_for

    ctx = _context(settings)
    try:
        _, code = code_for(ctx.registry, _request(args))
    finally:
        ctx.close()
    print(code, end="")
    return 0


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from .token_view import token_note, token_table

    ctx = _context(settings)
    try:
        request, first = _branched(args, ctx, _request(args))
        answer = ctx.answers.ask(request)
        result = _draw(answer, echo=not args.json)
    finally:
        ctx.close()
    if result.error:
        raise PlaygroundError(result.error)
    if args.json:
        out = {"model": result.spec.id if result.spec else args.model, "text": result.text}
        if request.branch is not None:  # the answer it branched from, and where
            out["branch"] = {"at": request.branch.at, "from_text": first}
        out["metrics"] = _metrics_json(result.metrics)
        if result.experts or (result.spec and Capability.MOE in result.spec.capabilities):
            out["experts"] = [record.to_dict() for record in result.experts]  # per token, per layer
        if request.options.response_format is not None:
            out["format_check"] = request.options.response_format.check(result.text).to_dict()
        if args.logprobs:
            out["tokens"] = [record.to_dict() for record in result.tokens]  # per generated token
            out["tokens_note"] = token_note(result.spec, bool(result.tokens))
        print(json.dumps(out))
    else:
        print()
        if args.logprobs:
            print(token_table(result.tokens) or token_note(result.spec, False), file=sys.stderr)
        if result.metrics.checked:
            print(result.metrics.checked, file=sys.stderr)
        note = result.metrics.note if result.metrics is not None else ""
        if result.reason == FinishReason.INTERRUPTED and note:  # why, in words (a read timeout, say)
            print(f"[interrupted: {note} Above is what arrived.]", file=sys.stderr)
        elif result.reason in FINISH_NOTES:
            print(FINISH_NOTES[result.reason], file=sys.stderr)
    return EXIT_CODES.get(result.reason, 0)


def _branched(args: argparse.Namespace, ctx, request):  # type: ignore[no-untyped-def]
    """With --branch AT:TOKEN_ID: the request continued from token AT of an answer, with the alternative
    TOKEN_ID forced there (branching.py), and that answer's text. The answer is the `tokens` of a
    `chat --logprobs K --json` output (--tokens FILE), or asked here first with the same options."""
    from dataclasses import replace

    from .branching import branch_from

    if not args.branch:
        return request, None
    try:
        at, token = (int(part) for part in args.branch.split(":"))
    except ValueError:
        raise InvalidOptionsError(
            f"--branch takes TOKEN:ID, two numbers (token 0 is the answer's first), not {args.branch!r}."
        ) from None
    if args.tokens:
        try:
            earlier = json.loads(Path(args.tokens).read_text(encoding="utf-8"))
            records, text = list(earlier["tokens"]), str(earlier.get("text", ""))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidOptionsError(
                f"--tokens needs the output of `chat --logprobs K --json` ({args.tokens}: {exc})."
            ) from None
    else:
        options = request.options
        asked = replace(request, options=options.model_copy(update={"logprobs": options.logprobs or 10}))
        first = ctx.answers.complete(asked)
        if first.error:
            raise PlaygroundError(first.error)
        records, text = first.tokens, first.text
    return replace(request, branch=branch_from(records, at, token)), text


def _draw(answer, *, echo: bool):  # type: ignore[no-untyped-def]
    """The answer's events to the end, printing its text as it comes. Ctrl-C stops the answer (the
    engine stops, what arrived is kept, the finish reason is `cancelled`); a second Ctrl-C quits."""
    from .answers import Result, Started, Text

    result = Result()
    previous = signal.getsignal(signal.SIGINT)

    def stop(signum: int, frame: object) -> None:
        answer.stop()
        signal.signal(signal.SIGINT, previous)

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGINT, stop)
    try:
        for event in answer:
            result.take(event)
            if echo and isinstance(event, Text):
                print(event.text, end="", flush=True)
            elif isinstance(event, Started) and event.notice:
                print(event.notice, file=sys.stderr, flush=True)
    finally:
        answer.close()
        if in_main:
            signal.signal(signal.SIGINT, previous)
    return result


def _metrics_json(metrics: Metrics) -> dict[str, object]:
    data = metrics.to_dict()
    keys = ("ttft_s", "tokens_per_s", "prompt_tokens", "completion_tokens", "total_s", "finish_reason")
    return {k: data[k] for k in keys} | {"estimated": metrics.estimated}


def cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    """Every prompt through both models, one after the other; a table, or JSON lines with --json."""
    from .arena.batch import compare, format_table, json_lines
    from .arena.library import ArenaPrompt, load_arena_prompts, read_prompt_file

    if len(args.model) != 2:
        raise ConfigError(f"compare takes two models (-m A -m B), got {len(args.model)}.")
    if args.prompts:
        prompts = read_prompt_file(Path(args.prompts))
    elif args.prompt:
        prompts = [ArenaPrompt(p) for p in args.prompt]
    else:
        library = load_arena_prompts()
        if args.category not in library:
            raise ConfigError(f"Unknown prompt category {args.category!r}; categories: {', '.join(library)}.")
        prompts = list(library[args.category].prompts)
    options = GenerationOptions.parse(
        temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    ctx = _context(settings)
    try:
        rows = []
        for row in compare(ctx.answers, args.model, prompts, options, system=args.system or ""):
            rows.append(row)
            if args.json:
                print(json_lines([row]), flush=True)
        if not args.json:
            print(format_table(rows))
    finally:
        ctx.close()
    return 1 if any(row.error for row in rows) else 0


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)


def cmd_convert(args: argparse.Namespace, settings: Settings) -> int:
    from .providers.local.convert import convert_to_onnx

    out = convert_to_onnx(Path(args.src), Path(args.out), precision=args.precision, progress=_progress)
    print(out)
    return 0


def cmd_prepare(args: argparse.Namespace, settings: Settings) -> int:
    """Convert the embedded model once, so the first chat starts at once."""
    from .providers.local import embedded

    print(embedded.ensure_onnx_folder(settings.models_dir, progress=_progress))
    return 0


def cmd_download(args: argparse.Namespace, settings: Settings) -> int:
    from .models_service import ModelManager

    ctx = _context(settings)
    path = ModelManager(ctx).download(args.model, progress=_progress)
    print(path)
    return 0


def cmd_local(args: argparse.Namespace, settings: Settings) -> int:
    from .models_service import ModelManager, human_size

    ctx = _context(settings)
    try:
        manager = ModelManager(ctx)  # the public-mode check and the unload of a loaded copy, as in the UI
        if args.delete:
            removed = manager.delete(args.delete)
            print(f"deleted {removed.name} ({human_size(removed.size_bytes)})")
            return 0
        for model in manager.local():
            print(f"{model.name:<60} {model.kind:<10} {human_size(model.size_bytes):>10}  {model.path}")
    finally:
        ctx.close()
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from .ui.app import launch

    launch(settings, host=args.host, port=args.port, share=args.share)
    return 0


def cmd_space(args: argparse.Namespace, settings: Settings) -> int:
    """Assemble a Hugging Face Space's files into a folder, for one hardware."""
    from .space.assemble import assemble
    from .space.hardware import hardware

    kind = hardware(args.hardware)
    files = assemble(Path(args.out), kind, oauth=args.oauth)
    out = Path(args.out).expanduser().resolve()
    size = sum(f.stat().st_size for f in files)
    print(f"{out}: {len(files)} files, {size / 1e6:.0f} MB, for {kind.flavor} ({kind.note})")
    print(f"default hub model, preloaded at build time: {kind.preload()}")
    print(f"upload: hf upload <user>/<space> {out} . --repo-type space  (steps: README.md in {out.name})")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse with one `error:` line (and the way to the help) instead of the usage block, and long
    options that take a value taking the next word even when it starts with '-'."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {_one_line(message)} (see `{self.prog} --help`)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """As argparse's, with `--owner -x...` read as `--owner=-x...` (see `glue_values`)."""
        words = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(glue_values(words, self._actions), namespace)


def glue_values(words: Sequence[str], actions: Sequence[argparse.Action]) -> list[str]:
    """`--opt VALUE` as `--opt=VALUE` when VALUE starts with '-' and is not an option itself.

    argparse reads a word that starts with '-' as an option, so a value such as a visitor id that starts
    with '-' (`history list --owner -x...`) is refused with "expected one argument"; getopt, and the `=`
    form, take it as the value. Only this parser's long options that take one value are glued; nothing
    after `--` is."""
    takes_value = {o for a in actions if a.nargs is None for o in a.option_strings if o.startswith("--")}
    options = [o for a in actions for o in a.option_strings]

    def is_option(word: str) -> bool:  # an option's name or (long) its abbreviation
        name = word.partition("=")[0]
        return (
            word == "--"
            or word in options
            or (name.startswith("--") and any(o.startswith(name) for o in options))
        )

    glued: list[str] = []
    i = 0
    while i < len(words):
        word, value = words[i], words[i + 1] if i + 1 < len(words) else None
        if word == "--":
            return glued + list(words[i:])
        if word in takes_value and value is not None and value.startswith("-") and not is_option(value):
            glued.append(f"{word}={value}")
            i += 2
        else:
            glued.append(word)
            i += 1
    return glued


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m playground", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_models, _add_chat, _add_compare, _add_files, _add_serving):
        add(sub)
    from .evaluate.cli import register as register_eval
    from .fidelity.cli import register as register_fidelity
    from .history.cli import register as register_history

    register_eval(sub)
    register_fidelity(sub)
    register_history(sub)
    return parser


def _add_models(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    models = sub.add_parser("models", help="list every model with its availability")
    models.add_argument("--json", action="store_true")
    models.set_defaults(handler=cmd_models)


def _add_chat(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    chat = sub.add_parser("chat", help="stream one answer to stdout")
    _question_args(chat)
    chat.add_argument("--json", action="store_true", help="print one JSON object with text and metrics")
    chat.add_argument(
        "--branch",
        metavar="TOKEN:ID",
        help="branch: the answer again from its token TOKEN (0 is the first) with the alternative ID "
        "forced there (a local model); the answer is --tokens FILE's, or asked first with these options",
    )
    chat.add_argument(
        "--tokens", metavar="FILE", help="with --branch: the output of `chat --logprobs K --json` to branch"
    )
    chat.set_defaults(handler=cmd_chat)
    code = sub.add_parser("code", help="print the script Get code gives for one question (chat's options)")
    _question_args(code)
    code.set_defaults(handler=cmd_code)


def _question_args(chat: argparse.ArgumentParser) -> None:
    """The arguments of one question to one model: `chat` and `code` take the same."""
    chat.add_argument("prompt", type=text_arg)
    chat.add_argument(
        "-m", "--model", type=model_ref, default="smollm2-135m-instruct", help="model id, catalog key or path"
    )
    chat.add_argument(
        "-p", "--provider", type=text_arg, help="narrow a catalog key to one provider or engine"
    )
    chat.add_argument("--system", type=text_arg)
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--top-p", type=float)
    chat.add_argument("--top-k", type=int)
    chat.add_argument("--repetition-penalty", type=float)
    chat.add_argument("--max-new-tokens", type=int)
    chat.add_argument("--stop", type=text_arg, action="append", help="a stop sequence (repeatable)")
    chat.add_argument("--seed", type=int)
    chat.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="PATH",
        help="an image to ask about (repeatable; a vision model only: others refuse it)",
    )
    chat.add_argument("--num-crops", type=int, help="Phi-3/3.5-vision with transformers: crops per image")
    chat.add_argument(
        "--logprobs",
        type=int,
        metavar="K",
        help="each token's probability and its K best alternatives (1-10): a table after the answer, "
        "or `tokens` in --json",
    )
    chat.add_argument("--json-schema", metavar="FILE", help="hold the answer to this JSON schema")
    chat.add_argument("--regex", metavar="PATTERN", help="hold the answer to this regular expression")


def _add_compare(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    compare = sub.add_parser("compare", help="run prompts through two models and compare answers and metrics")
    compare.add_argument(
        "prompt", nargs="*", type=text_arg, help="prompts (default: --prompts or --category)"
    )
    compare.add_argument(
        "-m", "--model", type=model_ref, action="append", required=True, help="a model (twice: -m A -m B)"
    )
    compare.add_argument(
        "--prompts", metavar="FILE", help="a prompt file: .toml (prompts/arena), .jsonl or text"
    )
    compare.add_argument(
        "--category", default="01-phi3-vs-phi35-bilingual", help="a prompts/arena set when no prompt is given"
    )
    compare.add_argument("--system", type=text_arg)
    compare.add_argument("--temperature", type=float)
    compare.add_argument("--max-new-tokens", type=int)
    compare.add_argument("--seed", type=int)
    compare.add_argument("--json", action="store_true", help="one JSON object a line per answer")
    compare.set_defaults(handler=cmd_compare)


def _add_files(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The commands that put models on this disk, list them and take them off."""
    convert = sub.add_parser("convert", help="convert a HF folder or GGUF file to ONNX Runtime GenAI")
    convert.add_argument("src")
    convert.add_argument("out")
    convert.add_argument("--precision", default="int4", choices=["int4", "int8", "fp16", "fp32"])
    convert.set_defaults(handler=cmd_convert)
    download = sub.add_parser("download", help="download a catalog model from the Hugging Face Hub")
    download.add_argument("model", type=model_ref)
    download.set_defaults(handler=cmd_download)
    local = sub.add_parser("local", help="list (or delete) downloaded and converted models")
    local.add_argument("--delete", type=text_arg, metavar="NAME")
    local.set_defaults(handler=cmd_local)
    prepare = sub.add_parser("prepare", help="convert the embedded model ahead of the first chat")
    prepare.set_defaults(handler=cmd_prepare)


def _add_serving(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The web playground, here or assembled as a Hugging Face Space."""
    serve = sub.add_parser("serve", help="start the web playground")
    serve.add_argument("--host")
    serve.add_argument("--port", type=port_arg)
    serve.add_argument("--share", action="store_true")
    serve.set_defaults(handler=cmd_serve)
    from .space.hardware import HARDWARE

    space = sub.add_parser(
        "space", help="assemble a Hugging Face Space's files (card, app, package) into OUT"
    )
    space.add_argument("out", metavar="OUT", help="a new or empty folder")
    space.add_argument(
        "--hardware",
        default="cpu-basic",
        choices=sorted(HARDWARE),
        help="the Space's hardware (default cpu-basic)",
    )
    space.add_argument("--oauth", action="store_true", help="add hf_oauth: true (sign in with Hugging Face)")
    space.set_defaults(handler=cmd_space)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A user's mistake (ours: PlaygroundError; the system's: OSError) is one
    `error:` line; anything else is a bug: one line too, and its traceback goes to a log file."""
    from dotenv import load_dotenv

    args = build_parser().parse_args(argv)
    settings: Settings | None = None
    try:
        try:
            load_dotenv()
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"The .env file cannot be read ({exc}): fix it or remove it.") from None
        settings = Settings.from_env()
        handler: Handler = args.handler
        return handler(args, settings)
    except PlaygroundError as exc:
        return _fail(str(exc))
    except OSError as exc:  # the machine said no: a missing file, permissions, a name too long, a full disk
        return _fail(_os_error(exc))
    except KeyboardInterrupt:
        print("\n[stopped]", file=sys.stderr)
        return 130
    except Exception as exc:  # an engine's or a library's error we did not translate: our bug
        return _fail(_unexpected(exc, settings))


def _fail(message: str) -> int:
    print(f"error: {_one_line(message)}", file=sys.stderr)
    return 1


def _one_line(message: str, limit: int = 2000) -> str:
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _os_error(exc: OSError) -> str:
    what = exc.strerror or str(exc)
    if exc.filename is not None:
        name = os.fsdecode(exc.filename) if isinstance(exc.filename, bytes) else str(exc.filename)
        name = name if len(name) <= 200 else name[:100] + "..." + name[-40:]
        return f"{what}: {name!r}"
    return what


def _unexpected(exc: Exception, settings: Settings | None) -> str:
    """Write the traceback to the log file; the one line that says where it is."""
    summary = f"unexpected {type(exc).__name__}: {_one_line(str(exc), 300)}"
    log = (settings.data_dir if settings is not None else _default_data_dir()) / "logs" / LOG_NAME
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(f"--- {datetime.now(UTC).isoformat(timespec='seconds')} {' '.join(sys.argv[1:2])}\n")
            f.write("".join(traceback.format_exception(exc)))
    except OSError:
        logging.getLogger(__name__).exception("unexpected error (the log file %s cannot be written)", log)
        return f"{summary} (this is a bug; its traceback is above)"
    return f"{summary} (this is a bug: please report it with the traceback in {log})"
