"""The branches of the last answer on the page: a turn's first answer and the branches made from its
tokens (branching.py), kept in the conversation's state with the one on screen last and the others
marked `hidden` (render.py skips them; the model is never sent them). Pure functions on turns."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .render import Turn


def arranged(turns: list[Turn]) -> list[Turn]:
    """Turns read from the history, each turn's answers (its first, then each branch: `branch_at` set)
    numbered in the order they were made (`branch_no`), the one shown last."""
    out: list[Turn] = []
    group: list[Turn] = []
    for turn in [*turns, None]:
        if turn is not None and turn["role"] == "assistant" and group and turn.get("branch_at") is not None:
            group.append(turn)
            continue
        for number, answer in enumerate(group, 1):
            answer["branch_no"] = number
        out += sorted(group, key=lambda answer: not answer.get("hidden"))  # stable: the shown one last
        group = [turn] if turn is not None and turn["role"] == "assistant" else []
        if turn is not None and not group:
            out.append(turn)
    return out


def last_answers(conversation: list[Turn]) -> list[Turn]:
    """The answers after the last question (its first answer and its branches), by number."""
    tail: list[Turn] = []
    for turn in reversed(conversation):
        if turn["role"] != "assistant":
            break
        tail.append(turn)
    return sorted(tail, key=lambda answer: int(answer.get("branch_no") or 1))


def next_number(conversation: list[Turn]) -> int:
    return max((int(a.get("branch_no") or 1) for a in last_answers(conversation)), default=0) + 1


def label(answer: Turn) -> str:
    number = int(answer.get("branch_no") or 1)
    at = answer.get("branch_at")
    if not isinstance(at, int):
        return f"{number}. the first answer"
    tokens = answer.get("tokens") or []
    forced = tokens[at].get("text", "") if at < len(tokens) and isinstance(tokens[at], dict) else ""
    return f"{number}. {forced!r} at token {at + 1}"


def given(turn: Turn) -> tuple[int, ...]:
    """A branch's given tokens (the kept ones, then the forced one), which Get code feeds after the prompt;
    () for an answer that is not a branch."""
    at = turn.get("branch_at")
    tokens = turn.get("tokens") or []
    if turn.get("role") != "assistant" or not isinstance(at, int) or len(tokens) <= at:
        return ()
    return tuple(int(t["id"]) for t in tokens[: at + 1] if isinstance(t, dict) and t.get("id") is not None)


def picker(conversation: list[Turn]) -> Any:
    """The switch between the last answer's branches: shown when it has any."""
    answers = last_answers(conversation)
    if len(answers) < 2:
        return gr.Radio(choices=[], value=None, visible=False)
    choices = [(label(a), str(a.get("branch_no") or 1)) for a in answers]
    shown = conversation[-1]
    return gr.Radio(choices=choices, value=str(shown.get("branch_no") or 1), visible=True)


def switched(conversation: list[Turn], number: str) -> tuple[list[Turn], Turn | None]:
    """The conversation with the last answer's branch `number` shown (last) and the others hidden, and
    that branch (None: no such branch, nothing changed)."""
    answers = last_answers(conversation)
    chosen = next((a for a in answers if str(a.get("branch_no") or 1) == str(number)), None)
    if chosen is None:
        return conversation, None
    earlier = conversation[: len(conversation) - len(answers)]
    others = [{**a, "hidden": True} for a in answers if a is not chosen]
    return [*earlier, *others, {**chosen, "hidden": False}], chosen
