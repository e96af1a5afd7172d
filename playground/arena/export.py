"""A battle as JSON (to keep, share or read back) and Markdown (to read), with the code that repeats
each side of each round (codegen's `snippet`, from the parameters the answer was actually sent with).

A blind battle is exported only after its first vote: before it, an export would name the models.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..codegen import snippet
from ..errors import HistoryError, ImportFormatError, PlaygroundError
from ..history import HistoryStore, StoredMessage
from ..options import GenerationOptions
from ..registry import Registry
from ..types import Message, ModelSpec

FORMAT = "slm-playground-battle"
VERSION = 1
METRIC_KEYS = ("ttft_s", "tokens_per_s", "prompt_tokens", "completion_tokens", "total_s")


def export_battle(store: HistoryStore, registry: Registry, owner: str, battle_id: str) -> dict[str, Any]:
    """Every round of the battle `battle_id` belongs to, as one JSON-ready dict."""
    first = store.battles.get_battle(owner, battle_id)
    rounds = store.battles.battle_rounds(owner, first.thread)
    if rounds[0].mode == "blind" and all(r.vote is None for r in rounds):
        raise HistoryError(
            "A blind battle is exported after the vote (before it, the export would name the models)."
        )
    specs = {"a": registry.resolve(rounds[0].model_a), "b": registry.resolve(rounds[0].model_b)}
    conversations = {
        "a": store.conversations.get_conversation(owner, rounds[0].conversation_a).messages,
        "b": store.conversations.get_conversation(owner, rounds[0].conversation_b).messages,
    }
    asked = rounds[0].parameters
    systems = {name: str(_side(asked, name).get("system") or "") for name in ("a", "b")}
    sides: dict[str, dict[str, object]] = {
        name: {
            "model": specs[name].id,
            "name": specs[name].name,
            "engine": specs[name].provider,
            "system": systems[name],
            "options": _side(asked, name).get("options") or {},
        }
        for name in ("a", "b")
    }
    out_rounds = []
    for battle in rounds:
        answers = {}
        for name in ("a", "b"):
            answers[name] = _answer(store, specs[name], systems[name], conversations[name], battle.round)
        out_rounds.append(
            {
                "round": battle.round,
                "battle_id": battle.id,
                "prompt": battle.prompt,
                "created_utc": battle.created_utc,
                "vote": None if battle.vote is None else str(battle.vote),
                "voted_utc": battle.voted_utc,
                "revealed": battle.revealed,
                "answers": answers,
            }
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "thread": first.thread,
        "mode": rounds[0].mode,
        "preset": str(asked.get("preset") or ""),
        "created_utc": rounds[0].created_utc,
        "sides": sides,
        "rounds": out_rounds,
    }


def _side(parameters: Mapping[str, object], name: str) -> dict[str, object]:
    value = parameters.get(name)
    return dict(value) if isinstance(value, Mapping) else {}


def _answer(
    store: HistoryStore, spec: ModelSpec, system: str, messages: Sequence[StoredMessage], round_number: int
) -> dict[str, Any]:
    """The round's answer and the code that sends the same conversation with the same parameters."""
    history: list[Message] = [Message("system", system)] if system else []
    seen = 0
    answer: StoredMessage | None = None
    question: StoredMessage | None = None
    for i, message in enumerate(messages):
        if message.role == "user":
            seen += 1
            history.append(
                Message("user", message.text, tuple(str(store.images.image_path(r)) for r in message.images))
            )
            if seen == round_number:
                question = message
                following = messages[i + 1] if i + 1 < len(messages) else None
                answer = following if following is not None and following.role == "assistant" else None
                break
        elif message.role == "assistant" and message.text:
            history.append(Message("assistant", message.text))
    sent = dict(answer.parameters) if answer else {}
    sent.pop("system", None)
    options = GenerationOptions.parse(**sent) if sent else GenerationOptions()
    try:
        language, code = snippet(spec, history, options)
    except PlaygroundError as exc:  # a call the engine refused (images to a text-only model)
        language, code = "text", f"No code for this call: {exc}"
    return {
        "text": answer.text if answer else "",
        "finish_reason": None
        if answer is None or answer.finish_reason is None
        else str(answer.finish_reason),
        "metrics": answer.metrics if answer else None,
        "parameters": options.model_dump(mode="json"),
        "images": list(question.images) if question else [],
        "code": {"language": language, "code": code},
    }


def to_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True)


def read_json(text: str | bytes) -> dict[str, Any]:
    """A battle export read back; ImportFormatError when it is not one."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImportFormatError(f"This is not a battle export (not JSON: {exc}).") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportFormatError(f"This is not a battle export: its format is not {FORMAT!r}.")
    if data.get("version") != VERSION:
        raise ImportFormatError(
            f"Battle export version {data.get('version')!r} is not {VERSION}: update the playground."
        )
    for key in ("sides", "rounds"):
        if key not in data:
            raise ImportFormatError(f"This battle export has no {key!r}: it was cut short or edited.")
    return data


def to_markdown(data: Mapping[str, Any]) -> str:
    """The battle for people: each round's prompt, both answers with their metrics, the vote, the code."""
    sides = data["sides"]
    title = f"{sides['a']['model']} vs {sides['b']['model']}"
    lines = [f"# Arena: {title}", "", f"Mode: {data['mode']}. Started {data['created_utc']}.", ""]
    for name in ("a", "b"):
        side = sides[name]
        lines.append(f"- **{name.upper()}**: {side['name']} (`{side['model']}`, engine {side['engine']})")
        if side["system"]:
            lines.append(f"  - system prompt: {_quote_inline(side['system'])}")
    for round_ in data["rounds"]:
        lines += ["", f"## Round {round_['round']}", "", _block(round_["prompt"])]
        for name in ("a", "b"):
            answer = round_["answers"][name]
            lines += [
                "",
                f"### {name.upper()}: {sides[name]['model']}",
                "",
                _block(answer["text"] or "(no answer)"),
            ]
            metrics = answer["metrics"] or {}
            shown = [f"{k} {metrics[k]}" for k in METRIC_KEYS if metrics.get(k) is not None]
            if metrics.get("error"):
                shown.append(f"error: {metrics['error']}")
            lines += ["", f"Finish: {answer['finish_reason']}; " + ", ".join(shown)]
        vote = round_["vote"]
        lines += ["", f"**Vote**: {vote or 'none'}" + (f" at {round_['voted_utc']}" if vote else "")]
        if round_["revealed"]:
            lines.append(f"(answer {round_['revealed'].upper()} named its model: not rated)")
        for name in ("a", "b"):
            code = round_["answers"][name]["code"]
            lines += ["", f"#### Code for {name.upper()}", "", _fence(code["code"], code["language"])]
    return "\n".join(lines) + "\n"


def _block(text: str) -> str:
    return "\n".join("> " + line for line in text.splitlines() or [""])


def _quote_inline(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _fence(code: str, language: str) -> str:
    ticks = "```"
    while ticks in code:
        ticks += "`"
    return f"{ticks}{language}\n{code}{'' if code.endswith(chr(10)) else chr(10)}{ticks}"
