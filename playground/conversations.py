"""Conversations kept in the history: questions written before generation, answers as they stream.

It joins the chat service and the history store; it knows nothing about Gradio.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from .chat import ChatService, Prepared
from .errors import HistoryError
from .history import AnswerRecorder, HistoryStore
from .images import ImageLimits, check_size
from .moe_view import pack
from .types import Chunk, ExpertRecord

TITLE_LENGTH = 60

log = logging.getLogger(__name__)


class ConversationService:
    """Records a chat in the store: None as the conversation id means incognito (nothing written)."""

    def __init__(self, chat: ChatService, store: HistoryStore, *, image_max_bytes: int | None = None) -> None:
        self.chat = chat
        self.store = store
        self.image_limits = (
            ImageLimits() if image_max_bytes is None else ImageLimits(max_bytes=image_max_bytes)
        )

    def ask(
        self,
        owner: str,
        conversation_id: str | None,
        question: str,
        model_id: str,
        *,
        tab: str = "instruct",
        edit: bool = False,
        images: Sequence[str] | None = None,
    ) -> str:
        """Write the question (or replace the last one, dropping what followed); the conversation id.

        `images`: the question's image files, stored with it (on an edit they replace the question's
        images; None keeps them); each is checked against the image size limit before it is read.
        HistoryFullError when the visitor's history is at its quota (public mode): nothing is written."""
        for path in images or ():
            check_size(str(path), self.image_limits)
        self.store.quota.check_quota(owner, conversations=int(conversation_id is None), texts=[question])
        refs = None if images is None else [self.store.images.store_image_file(path) for path in images]
        if conversation_id is None:
            title = " ".join(question.split())[:TITLE_LENGTH] or "New conversation"
            conversation_id = self.store.conversations.create_conversation(owner, tab, title, model_id).id
        if edit:
            self.store.conversations.edit_last_question(owner, conversation_id, question, images=refs)
        else:
            self.store.conversations.add_message(owner, conversation_id, "user", question, images=refs or ())
        return conversation_id

    def forget_last_answer(self, owner: str, conversation_id: str) -> None:
        """Before a regenerate: the last question stays, what followed it goes."""
        messages = self.store.conversations.get_conversation(owner, conversation_id).messages
        questions = [m for m in messages if m.role == "user"]
        if questions:
            self.store.conversations.edit_last_question(owner, conversation_id, questions[-1].text)

    def record(
        self, owner: str, conversation_id: str | None, prepared: Prepared, stream: Iterator[Chunk]
    ) -> Iterator[Chunk]:
        """Pass the stream through, saving the answer at once, then at most once a second, then its end.

        An MoE answer's expert records are saved with it when it ends (stopped answers too).
        """
        if conversation_id is None:
            yield from stream
            return
        spec = prepared.spec
        recorder = self.store.conversations.start_answer(
            owner,
            conversation_id,
            model=spec.id,
            engine=spec.provider,
            parameters=prepared.options.model_dump(mode="json"),
        )
        text = ""
        experts: list[ExpertRecord] = []
        try:
            for chunk in stream:
                if chunk.experts is not None:
                    experts.append(chunk.experts)
                text += chunk.text
                recorder.update(text)
                if chunk.metrics is not None:
                    self._save_experts(owner, recorder, experts)
                    recorder.finish(chunk.metrics, text=text)
                yield chunk
        except Exception as exc:  # ours, or (in-process) an engine's own: an error, never "cancelled"
            self._save_experts(owner, recorder, experts)
            recorder.fail({"finish_reason": "error", "error": str(exc) or type(exc).__name__})
            raise
        finally:
            if not recorder.finished:
                self._save_experts(owner, recorder, experts)
            recorder.close()  # not finished by now: the stream was closed (Stop)

    def _save_experts(self, owner: str, recorder: AnswerRecorder, experts: list[ExpertRecord]) -> None:
        """The expert map goes with the answer; a failed write loses the map, never the answer."""
        if not experts or recorder.finished:
            return
        try:
            self.store.conversations.save_experts(owner, recorder.message_id, pack(experts))
        except HistoryError as exc:
            log.warning("Could not save the expert map of answer %s: %s", recorder.message_id, exc)
