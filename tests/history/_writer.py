"""A playground process in miniature: streams one long answer from the embedded model into the history.

Run by test_crash.py, which kills it with SIGKILL mid-answer. Usage:
    python tests/history/_writer.py DATA_DIR MODELS_DIR OWNER LOG
Each update is also logged to LOG as "<unix time> <characters so far>", so the test can tell how much of
the answer existed a second before the kill.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from playground.answers import AnswerService, Recording, Request, Text
from playground.context import AppContext
from playground.history import HistoryStore
from playground.options import GenerationOptions
from playground.settings import Settings
from playground.types import Message

MODEL = "smollm2-135m-instruct@onnx"
QUESTION = "Write a very long, detailed story about a journey across Europe, with many chapters."
OPTIONS = GenerationOptions.parse(temperature=0.9, max_new_tokens=3000, seed=1, repetition_penalty=1.05)


def main(data_dir: str, models_dir: str, owner: str, log_path: str) -> None:
    settings = Settings.from_env({"PLAYGROUND_DATA_DIR": data_dir, "PLAYGROUND_MODELS_DIR": models_dir})
    store = HistoryStore(settings.history_path)
    store.db.recover_interrupted()
    conversation = store.conversations.create_conversation(owner, "instruct", QUESTION, MODEL)
    store.conversations.add_message(owner, conversation.id, "user", QUESTION)  # before anything can fail
    ctx = AppContext.create(settings)
    answers = AnswerService(ctx.chat)
    text = ""
    with Path(log_path).open("w") as log:
        for event in answers.ask(
            Request(
                MODEL,
                [Message("user", QUESTION)],
                OPTIONS,
                record=Recording(store.conversations, owner, conversation.id),
            )
        ):
            if isinstance(event, Text):
                text += event.text
                log.write(f"{time.time():.3f} {len(text)}\n")
                log.flush()
    print("finished before the kill", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:5])
