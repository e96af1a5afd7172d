"""Export conversations as Markdown (to read) or JSON (to import back), and import JSON exports."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ImportFormatError
from ..text import valid_bytes, valid_text
from ..types import ENGINE_LABELS, FinishReason
from .images import is_image_ref
from .records import Conversation, ConversationDraft, MessageDraft, StoredMessage
from .rows import utc_now
from .store import HistoryStore

FORMAT: Literal["slm-playground-history"] = "slm-playground-history"
VERSION: Literal[1] = 1
MAX_IMPORT_BYTES = 64 * 1024 * 1024
MAX_IMPORT_DEPTH = 32  # an export nests about 6 deep; parameters and metrics are flat


class ImageSource(Protocol):
    """Where an export reads image files: the store's images (or a bare ImageFolder)."""

    def read(self, ref: str) -> bytes | None: ...


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageOut(_Strict):
    ref: str
    data_base64: str | None = None


class MessageOut(_Strict):
    role: Literal["system", "user", "assistant"]
    text: str
    images: list[ImageOut] = Field(default_factory=list)
    model: str = ""
    engine: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    finish_reason: FinishReason | None = None
    created_utc: datetime | None = None
    tokens: list[dict[str, Any]] | None = None  # the token view: TokenRecord.to_dict() per generated token
    branch_at: int | None = Field(None, ge=0)  # a branch: continued from this token of the answer before it
    hidden: bool = False  # a branch the visitor switched away from (not part of the conversation)

    @field_validator("created_utc")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)


class ConversationOut(_Strict):
    title: str
    tab: str = "instruct"
    model: str = ""
    created_utc: datetime | None = None
    updated_utc: datetime | None = None
    owner: str | None = None
    messages: list[MessageOut]

    @field_validator("created_utc", "updated_utc")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)


class HistoryExport(_Strict):
    """The JSON export, version 1: what `import_json` reads back."""

    format: Literal["slm-playground-history"] = FORMAT
    version: Literal[1] = VERSION
    exported_utc: datetime
    conversations: list[ConversationOut]


@dataclass(frozen=True)
class ImportResult:
    conversation_ids: tuple[str, ...]
    images_missing: int = 0


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(timespec="microseconds")


def load_conversations(
    store: HistoryStore, owner: str, ids: Sequence[str] | None = None
) -> list[Conversation]:
    """This owner's conversations (the given ids, or all of them, newest first)."""
    if ids is None:
        ids = [s.id for s in store.conversations.list_conversations(owner, limit=None)]
    return [store.conversations.get_conversation(owner, conversation_id) for conversation_id in ids]


# JSON


def to_json(
    conversations: Sequence[Conversation],
    images: ImageSource | None = None,
    *,
    include_owner: bool = False,
) -> str:
    """The JSON export; with `images`, image files are embedded (base64) so the file stands alone."""
    document = HistoryExport(
        exported_utc=datetime.now(UTC),
        conversations=[_conversation_out(c, images, include_owner) for c in conversations],
    )
    return document.model_dump_json(indent=2)


def _conversation_out(
    conversation: Conversation, images: ImageSource | None, include_owner: bool
) -> ConversationOut:
    s = conversation.summary
    return ConversationOut(
        title=s.title,
        tab=s.tab,
        model=s.model,
        created_utc=datetime.fromisoformat(s.created_utc),
        updated_utc=datetime.fromisoformat(s.updated_utc),
        owner=s.owner if include_owner else None,
        messages=[_message_out(m, images) for m in conversation.messages],
    )


def _message_out(message: StoredMessage, images: ImageSource | None) -> MessageOut:
    return MessageOut(
        role=message.role,
        text=message.text,
        images=[_image_out(ref, images) for ref in message.images],
        model=message.model,
        engine=message.engine,
        parameters=message.parameters,
        metrics=message.metrics,
        finish_reason=message.finish_reason,
        created_utc=datetime.fromisoformat(message.created_utc) if message.created_utc else None,
        tokens=message.tokens,
        branch_at=message.branch_at,
        hidden=message.hidden,
    )


def _image_out(ref: str, images: ImageSource | None) -> ImageOut:
    data = images.read(ref) if images is not None else None
    return ImageOut(ref=ref, data_base64=base64.b64encode(data).decode() if data is not None else None)


def export_json(
    store: HistoryStore, owner: str, ids: Sequence[str] | None = None, *, include_images: bool = True
) -> str:
    """One, some or all of this owner's conversations as a JSON export."""
    return to_json(load_conversations(store, owner, ids), store.images if include_images else None)


def parse_json(data: str | bytes, *, max_conversations: int | None = None) -> HistoryExport:
    """Validate an export; ImportFormatError says what is wrong with the file. `max_conversations`: the
    most one import may hold (PLAYGROUND_IMPORT_CONVERSATIONS), counted before anything is validated."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFormatError(
            f"The file is larger than {MAX_IMPORT_BYTES // 2**20} MB: export fewer conversations."
        )
    if isinstance(data, bytes):
        data = valid_bytes(data.removeprefix(b"\xef\xbb\xbf"))  # bytes that are not UTF-8 become U+FFFD
    too_deep = ImportFormatError(
        f"The file nests arrays or objects more than {MAX_IMPORT_DEPTH} levels deep, which no export "
        "does: pick a file made by 'Export JSON'."
    )
    try:
        parsed = json.loads(data)
    except RecursionError:  # the parser recurses: thousands of levels exhaust Python's stack
        raise too_deep from None
    except ValueError as exc:
        raise ImportFormatError(f"The file is not JSON ({exc}): pick a file made by 'Export JSON'.") from None
    if _depth(parsed) > MAX_IMPORT_DEPTH:
        raise too_deep
    raw = _valid_strings(parsed)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ImportFormatError(
            "The file is not a playground history export: pick a file made by 'Export JSON'."
        )
    if raw.get("version") != VERSION:
        raise ImportFormatError(
            f"The export is version {raw.get('version')!r}; this playground reads version {VERSION}: "
            "update the playground, or export again from this version."
        )
    found = raw.get("conversations")
    if max_conversations is not None and isinstance(found, list) and len(found) > max_conversations:
        raise ImportFormatError(
            f"The file holds {len(found)} conversations; this server imports at most {max_conversations} "
            "at a time: export fewer (one by one, or delete some before 'Export all') and import each file."
        )
    try:
        return HistoryExport.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise ImportFormatError(f"The export is damaged or edited by hand: {problems}.") from None


def _depth(value: Any) -> int:
    """How deep a parsed document's arrays and objects nest, measured without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _valid_strings(value: Any) -> Any:
    """Every string in a parsed document (keys too) as valid Unicode: a lone surrogate written as a
    JSON escape ("\\ud800") becomes U+FFFD, the rest of the text is kept."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [_valid_strings(item) for item in value]
    if isinstance(value, dict):
        return {valid_text(key): _valid_strings(item) for key, item in value.items()}
    return value


def import_file(
    store: HistoryStore,
    owner: str,
    path: Path | str,
    *,
    max_bytes: int | None = None,
    max_conversations: int | None = None,
) -> ImportResult:
    """Import an export file; its size is checked on disk (`max_bytes`, PLAYGROUND_IMPORT_MB) before a
    byte of it is read."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise ImportFormatError("The uploaded file is gone: choose it again.") from None
    if max_bytes is not None and size > max_bytes:
        raise ImportFormatError(
            f"The file is {size / 1e6:.1f} MB; this server imports files up to {max_bytes / 1e6:g} MB: "
            "export fewer conversations (or one at a time) and import each file."
        )
    return import_json(store, owner, path.read_bytes(), max_conversations=max_conversations)


def import_json(
    store: HistoryStore, owner: str, data: str | bytes, *, max_conversations: int | None = None
) -> ImportResult:
    """Add the conversations of a JSON export to this owner's history, with new ids (all or none).

    The owner's quota (public mode) is checked before the images are stored, and again as they are
    written: a refused import leaves nothing in the history."""
    document = parse_json(data, max_conversations=max_conversations)
    store.quota.check_quota(
        owner,
        conversations=len(document.conversations),
        texts=[m.text for c in document.conversations for m in c.messages],
    )
    missing = 0
    drafts: list[ConversationDraft] = []
    for conversation in document.conversations:
        messages: list[MessageDraft] = []
        for message in conversation.messages:
            refs = [_import_image(store, image) for image in message.images]
            missing += refs.count(None)
            messages.append(_message_draft(message, tuple(r for r in refs if r is not None)))
        drafts.append(
            ConversationDraft(
                tab=conversation.tab,
                title=conversation.title,
                model=conversation.model,
                messages=tuple(messages),
                created_utc=_iso(conversation.created_utc),
                updated_utc=_iso(conversation.updated_utc),
            )
        )
    return ImportResult(tuple(store.conversations.import_conversations(owner, drafts)), missing)


def _message_draft(message: MessageOut, refs: tuple[str, ...]) -> MessageDraft:
    reason = message.finish_reason
    if message.role == "assistant" and reason is None:
        reason = FinishReason.INTERRUPTED  # an export taken mid-answer: that answer will never finish
    return MessageDraft(
        role=message.role,
        text=message.text,
        images=refs,
        model=message.model,
        engine=message.engine,
        parameters=message.parameters,
        metrics=message.metrics,
        finish_reason=reason,
        created_utc=_iso(message.created_utc),
        tokens=message.tokens,
        branch_at=message.branch_at if message.role == "assistant" else None,
        hidden=message.hidden and message.role == "assistant",
    )


def _import_image(store: HistoryStore, image: ImageOut) -> str | None:
    """The reference of an imported image: stored from its data, or an existing file; None if missing."""
    if image.data_base64 is not None:
        try:
            data = base64.b64decode(image.data_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ImportFormatError("An image in the export is damaged: export it again.") from None
        suffix = "." + image.ref.rsplit(".", 1)[-1] if "." in image.ref else ".png"
        return store.images.store_image(data, suffix)
    if is_image_ref(image.ref) and store.images.image_path(image.ref).is_file():
        return image.ref
    return None


# Markdown


def to_markdown(conversations: Sequence[Conversation], *, image_base: str = "images/") -> str:
    """A readable document: each conversation with its model, parameters, messages and metrics."""
    header = f"<!-- slm-playground history, exported {utc_now()} -->"
    body = "\n\n---\n\n".join(_conversation_md(c, image_base) for c in conversations)
    return f"{header}\n\n{body}\n"


def export_markdown(
    store: HistoryStore, owner: str, ids: Sequence[str] | None = None, *, image_base: str = "images/"
) -> str:
    """One, some or all of this owner's conversations as Markdown."""
    return to_markdown(load_conversations(store, owner, ids), image_base=image_base)


def _conversation_md(conversation: Conversation, image_base: str) -> str:
    s = conversation.summary
    lines = [f"# {_one_line(s.title)}", ""]
    facts = [f"Tab: {s.tab}", f"Created: {s.created_utc}", f"Updated: {s.updated_utc}"]
    if s.model:
        facts.insert(1, f"Model: `{s.model}`")
    lines += [" · ".join(facts)]
    for message in conversation.messages:
        lines += ["", *_message_md(message, image_base)]
    return "\n".join(lines)


def _message_md(message: StoredMessage, image_base: str) -> list[str]:
    heading = f"## {message.role.capitalize()}"
    if message.role == "assistant" and message.model:
        engine = ENGINE_LABELS.get(message.engine, message.engine)
        heading += f" · `{message.model}`" + (f" on {engine}" if engine else "")
    if message.branch_at is not None:
        heading += f" · branch from token {message.branch_at + 1}"
    if message.hidden:
        heading += " · not shown (another branch is)"
    lines = [heading, "", message.text or "*(no text)*"]
    for i, ref in enumerate(message.images, 1):
        lines += ["", f"![image {i}]({image_base}{ref})"]
    details = _details(message)
    if details:
        lines += ["", f"*{details}*"]
    return lines


def _details(message: StoredMessage) -> str:
    """The parameters, metrics and finish reason of an answer, on one line."""
    parts: list[str] = []
    if message.parameters:
        parts.append(parameters_text(message.parameters))
    parts += _metrics_md(message.metrics or {})
    if message.finish_reason is not None:
        parts.append(f"finish: {message.finish_reason}")
    return " · ".join(parts)


def parameters_text(parameters: dict[str, Any]) -> str:
    """`temperature 0.2, top_p 0.9, stop "###"`: the values set, in words (no None, no Python reprs)."""
    parts = []
    for name, value in sorted(parameters.items()):
        if value is None or value == [] or value == ():
            continue
        if isinstance(value, list | tuple):
            shown = ", ".join(json.dumps(str(v), ensure_ascii=False) for v in value)
        elif isinstance(value, str):
            shown = json.dumps(value, ensure_ascii=False)
        else:
            shown = str(value)
        parts.append(f"{name} {shown}")
    return ", ".join(parts)


def _metrics_md(metrics: dict[str, object]) -> list[str]:
    parts: list[str] = []
    if isinstance(metrics.get("completion_tokens"), int | float):
        parts.append(f"{metrics['completion_tokens']} tokens")
    for key, label, scale, unit in (
        ("ttft_s", "first token", 1000, " ms"),
        ("tokens_per_s", "", 1, " tok/s"),
        ("total_s", "total", 1, " s"),
    ):
        value = metrics.get(key)
        if isinstance(value, int | float):
            parts.append(f"{label + ' ' if label else ''}{value * scale:.1f}{unit}")
    return parts


def _one_line(text: str) -> str:
    return " ".join(text.split())
