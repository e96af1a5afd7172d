"""From the conversation state (plain dicts) to what the page shows. The only module that knows
Gradio's chat message format."""

from __future__ import annotations

from typing import Any

from ..types import Message

Turn = dict[str, Any]

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
    if note:
        parts.append(note)
    return " · ".join(p for p in parts if p)


def to_chatbot(conversation: list[Turn], *, streaming: bool = False) -> list[dict[str, Any]]:
    """Chatbot messages: each answer followed by a small metrics line (a collapsed info message)."""
    shown: list[dict[str, Any]] = []
    for index, turn in enumerate(conversation):
        if turn["role"] == "user":
            shown.append({"role": "user", "content": turn["content"]})
            continue
        live = streaming and index == len(conversation) - 1
        shown.append({"role": "assistant", "content": turn["content"] or ("…" if live else "")})
        if not live:
            if turn.get("finish") is None:
                turn = {**turn, "finish": "cancelled"}
            shown.append(
                {
                    "role": "assistant",
                    "content": "",
                    "metadata": {"title": metrics_line(turn), "status": "done"},
                }
            )
    return shown


def to_messages(conversation: list[Turn], system_prompt: str) -> list[Message]:
    """What the model is sent: the system prompt, then every question and answer."""
    messages = [Message("system", system_prompt.strip())] if system_prompt.strip() else []
    messages += [
        Message(t["role"], t["content"]) for t in conversation if t["content"] or t["role"] == "user"
    ]
    return messages


def context_meter(used: int | None, window: int) -> str:
    """A one-line bar: tokens used of the model's window."""
    if used is None:
        return f"Context window: {window:,} tokens"
    share = min(used / window, 1.0) if window else 0.0
    filled = round(share * 20)
    return f"Context: `{'█' * filled}{'░' * (20 - filled)}` {used:,} / {window:,} tokens ({share:.1%})"
