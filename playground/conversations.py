"""Conversations kept in the history: the questions, written before they are answered (the answers are
recorded by the answer pipeline, answers.py). It knows nothing about Gradio.
"""

from __future__ import annotations

from collections.abc import Sequence

from .history import HistoryStore
from .images import ImageLimits, check_size

TITLE_LENGTH = 60


class ConversationService:
    """Records a chat in the store: None as the conversation id means incognito (nothing written)."""

    def __init__(self, store: HistoryStore, *, image_max_bytes: int | None = None) -> None:
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
