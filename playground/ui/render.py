"""From the conversation state (plain dicts) to what the page shows. The only module that knows
Gradio's chat message format."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator
from typing import Any

import gradio as gr

from ..errors import PlaygroundError
from ..text import valid_text
from ..types import Message

Turn = dict[str, Any]

log = logging.getLogger("playground.ui")


def warn(problem: PlaygroundError | str, *, logged: bool = False) -> None:
    """A visitor's error the page carries on after: one line in the server log (no traceback; none
    when it was `logged` where it happened, as an answer's error is) and a toast in the page."""
    if not logged:
        log.info("%s", problem if isinstance(problem, str) else f"{type(problem).__name__}: {problem}")
    gr.Warning(str(problem))


def refusal(problem: PlaygroundError | str) -> gr.Error:
    """A visitor's error that ends the handler (raise what this returns): one line in the server log
    (no traceback), the message on the page."""
    log.info("%s", problem if isinstance(problem, str) else f"{type(problem).__name__}: {problem}")
    return gr.Error(str(problem), print_exception=False)


FINISH_NOTES = {
    "cancelled": "⏹ stopped",
    "interrupted": "⚠ interrupted: the connection or the engine died mid-answer",
    "error": "⚠ error",
    "length": "✂ reached the token limit",
}


def metrics_line(turn: Turn) -> str:
    """`72 ms to first token · 70.1 tok/s · 19 tokens · SmolLM2-135M-Instruct · ONNX Runtime GenAI`."""
    metrics = turn.get("metrics") or {}
    parts: list[str] = []
    if metrics.get("ttft_s") is not None:
        parts.append(f"{metrics['ttft_s'] * 1000:.0f} ms to first token")
    if metrics.get("tokens_per_s") is not None:
        parts.append(f"{metrics['tokens_per_s']:.1f} tok/s")
    if metrics.get("completion_tokens"):
        estimated = "~" if metrics.get("estimated") else ""
        parts.append(f"{estimated}{metrics['completion_tokens']} tokens")
    parts += [turn.get("model_name", ""), turn.get("engine", "")]
    note = FINISH_NOTES.get(turn.get("finish") or "")
    if note and metrics.get("note"):  # why, in words (an engine process that died, a timeout)
        note = f"{note.split(':')[0]}: {metrics['note']}"
    if note:
        parts.append(note)
    if metrics.get("checked"):  # the response format's check (structured output)
        parts.append(str(metrics["checked"]))
    if isinstance(turn.get("branch_at"), int):  # a branch from a token (branching.py)
        parts.append(f"branch from token {turn['branch_at'] + 1}")
    return " · ".join(p for p in parts if p)


# Untrusted Markdown (answers, questions, stored messages) made safe to render in the page.

# Images the app itself serves (a visitor's own attachments): these still show.
SAFE_IMAGE_URL = r"(?:/gradio_api/file=|data:image/(?:png|jpeg|gif|webp);base64,)[^\s()<>\\\"'`]*"
_SAFE_IMAGE = re.compile(r"!\[[^\[\]\n]*\]\(\s*" + SAFE_IMAGE_URL + r"\s*\)")
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_BACKTICKS = re.compile(r"`+")
_WORD_JOINER = "\u2060"


# Every streamed update shows the whole chat again (both panes, in the arena): with the cache, a settled
# turn is rewritten once, not at every update (about 9 ms an update for 20 long turns, on the event loop).
@functools.lru_cache(maxsize=256)
def safe_markdown(text: str) -> str:
    """Markdown from outside made safe to render: nothing is fetched, nothing of its own HTML survives.

    Outside code every `<` becomes `&lt;`, so raw HTML (`<img>`, `<svg>`, `<style>`, any `id` or `style`
    attribute) shows as text. A Markdown image becomes a link ("🖼 [alt](url)") unless the app serves it
    (SAFE_IMAGE_URL). Code is kept as it is; each fenced block is written again in a form every Markdown
    parser reads the same way (a fence at column 0, longer than any backtick run inside it), and a code
    span counts only within one line, outside a table cell. A ```mermaid block shows as code (a diagram
    can load images). Gradio's LaTeX extension matches `$$...$$` anywhere in a message and can make the
    renderer read code as HTML, so when code holds `<` or `![`, each `$$` is split by a word joiner.
    """
    text = valid_text(text).replace("\r\n", "\n").replace("```mermaid", "``` mermaid")
    segments = [(code, part if code else _safe_prose(part)) for code, part in _code_and_prose(text)]
    risky = any(code and ("<" in part or "![" in part) for code, part in segments)
    shown = "".join(part for _, part in segments)
    return shown.replace("$$", f"${_WORD_JOINER}$") if risky else shown


def safe_export(markdown: str) -> str:
    """A history export shown in the page: its header comment left out, the rest made safe."""
    first, _, rest = markdown.partition("\n")
    return safe_markdown(rest if first.startswith("<!-- slm-playground") else markdown)


def _code_and_prose(text: str) -> Iterator[tuple[bool, str]]:
    """(is_code, text) pieces: fenced blocks (written again at column 0), code spans, the prose between."""
    prose: list[str] = []
    lines = text.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        opened = _FENCE.match(lines[index].rstrip("\n"))
        if opened is None or (opened.group(2)[0] == "`" and "`" in opened.group(3)):
            prose.append(lines[index])
            index += 1
            continue
        yield from _code_spans("".join(prose))
        prose = []
        indent, fence, info = len(opened.group(1)), opened.group(2), opened.group(3)
        body: list[str] = []
        index += 1
        while index < len(lines):
            line = lines[index]
            index += 1
            closing = _FENCE.match(line.rstrip("\n"))
            if (
                closing
                and closing.group(2)[0] == fence[0]
                and len(closing.group(2)) >= len(fence)
                and not closing.group(3).strip()
            ):
                break
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
        yield True, _fenced("".join(body), info)
    yield from _code_spans("".join(prose))


def _fenced(body: str, info: str) -> str:
    """A fenced block no parser reads otherwise: a blank line, a fence at column 0 longer than any run."""
    runs = [len(r) for r in _BACKTICKS.findall(body)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    words = info.split()
    language = re.sub(r"[^\w+#.-]", "", words[0]) if words else ""
    if body and not body.endswith("\n"):
        body += "\n"
    return f"\n{fence} {language}\n{body}{fence}\n"


def _code_spans(text: str) -> Iterator[tuple[bool, str]]:
    """Code spans as CommonMark finds them, kept only within one line and with no `|` (a table cell)."""
    start = 0
    offset = 0
    for line in text.splitlines(keepends=True):
        position = 0
        while (run := _BACKTICKS.search(line, position)) is not None:
            before = line[: run.start()]
            escaped = (len(before) - len(before.rstrip("\\"))) % 2 == 1
            begin = run.start() + escaped
            close = _closing_run(line, run.end(), run.end() - begin) if begin < run.end() else None
            if close is None or "|" in line[begin:close]:
                position = run.end()
                continue
            yield False, text[start : offset + begin]
            yield True, line[begin:close]
            start = offset + close
            position = close
        offset += len(line)
    yield False, text[start:]


def _closing_run(line: str, position: int, length: int) -> int | None:
    """The end of the next backtick run of exactly `length` after position, if any."""
    for run in _BACKTICKS.finditer(line, position):
        if len(run.group()) == length:
            return run.end()
    return None


def _safe_prose(text: str) -> str:
    """Prose: HTML shown as text, images the app does not serve turned into links."""
    text = text.replace("<", "&lt;")
    return re.sub(r"!\[", lambda m: "![" if _SAFE_IMAGE.match(text, m.start()) else "🖼 [", text)


def to_chatbot(conversation: list[Turn], *, streaming: bool = False) -> list[dict[str, Any]]:
    """Chatbot messages: each answer followed by a small metrics line (a collapsed info message)."""
    shown: list[dict[str, Any]] = []
    numbered = 0  # images are numbered across the conversation, as Phi's <|image_N|> tags are
    for index, turn in enumerate(conversation):
        if turn.get("hidden"):  # a branch of its turn that another one replaced on screen
            continue
        if turn["role"] == "user":
            images = list(turn.get("images") or [])
            text = safe_markdown(turn["content"])
            if not images:
                shown.append({"role": "user", "content": text})
                continue
            parts: list[Any] = [
                {"path": path, "alt_text": f"image {numbered + i + 1}"} for i, path in enumerate(images)
            ]
            numbered += len(images)
            shown.append({"role": "user", "content": [*parts, text] if text else parts})
            continue
        live = streaming and index == len(conversation) - 1
        shown.append(
            {"role": "assistant", "content": safe_markdown(turn["content"]) or ("…" if live else "")}
        )
        if not live:
            if turn.get("finish") is None:
                turn = {**turn, "finish": "cancelled"}
            shown.append(
                {
                    "role": "assistant",
                    "content": "",
                    "metadata": {"title": safe_markdown(metrics_line(turn)), "status": "done"},
                }
            )
    return shown


def to_messages(conversation: list[Turn], system_prompt: str) -> list[Message]:
    """What the model is sent: the system prompt, then every question and answer."""
    messages = [Message("system", system_prompt.strip())] if system_prompt.strip() else []
    messages += [
        Message(t["role"], t["content"], tuple(t.get("images") or ()))
        for t in conversation
        if (t["content"] or t["role"] == "user") and not t.get("hidden")
    ]
    return messages


def context_meter(used: int | None, window: int) -> str:
    """A one-line bar: tokens used of the model's window."""
    if used is None:
        return f"Context window: {window:,} tokens"
    share = min(used / window, 1.0) if window else 0.0
    filled = round(share * 20)
    return f"Context: `{'█' * filled}{'░' * (20 - filled)}` {used:,} / {window:,} tokens ({share:.1%})"
