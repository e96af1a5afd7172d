"""One failure, three callers: the page, `/chat` and the CLI say the same clear message, and the page
stores the finish reason it shows. Three real failures: a chat template that raises while the request is
prepared, an engine that fails mid-answer, and a worker process killed mid-answer.

Real components: the embedded SmolLM2 (a copy of its transformers folder with a broken template), the
real app over HTTP (gradio_client), the CLI as a subprocess, a real SQLite history.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gradio as gr
import psutil
import pytest
from gradio_client import Client

from playground.context import AppContext
from playground.history import new_browser_id
from playground.settings import Settings
from playground.ui.instruct import InstructTab
from tests.support import ROOT, loaded, make_settings, serving

BROKEN = "This chat template is broken on purpose"
STORY = "Write a very long story about a lighthouse keeper and the sea."
GREEDY = ("", 0.0, 1.0, 0, 512, 1.0, -1, "")  # the page's parameter values: system prompt first


@pytest.fixture(scope="module")
def broken_folder(embedded_hf_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded model's transformers folder with a chat template that raises (a model a user
    points the playground at, whose template does not fit the conversation)."""
    folder = tmp_path_factory.mktemp("broken") / "smollm2-broken-template"
    folder.mkdir()
    for item in embedded_hf_folder.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "chat_template.jinja").unlink()
    (folder / "chat_template.jinja").write_text("{{ raise_exception('" + BROKEN + "') }}")
    return folder


def page_answer(
    tab: InstructTab, question: str, model: str, on_update: Any = None
) -> tuple[str, list[tuple[Any, ...]]]:
    """The visitor's id, and every update the Instruct tab's handler yields as the page receives them."""
    owner = new_browser_id()

    async def run() -> list[tuple[Any, ...]]:
        updates = []
        conversation = [{"role": "user", "content": question}]
        request = gr.Request(session_hash=f"failures-{owner[:8]}")
        async for update in tab.respond(
            request, conversation, None, owner, {}, False, False, "Text", "", model, *GREEDY
        ):
            updates.append(update)
            if on_update is not None:
                on_update(update)
        return updates

    with ThreadPoolExecutor(1) as pool:  # a loop of its own (a browser test may hold this thread's loop)
        return owner, pool.submit(asyncio.run, run()).result()


def stored_finish(ctx: AppContext, owner: str, updates: list[tuple[Any, ...]]) -> tuple[str, str]:
    """The finish reason and error of the answer the page stored."""
    answer = ctx.history.conversations.get_conversation(owner, updates[-1][1]).messages[-1]
    return str(answer.finish_reason), str((answer.metrics or {}).get("error") or "")


def cli(settings: Settings, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PLAYGROUND_DATA_DIR": str(settings.data_dir),
        "PLAYGROUND_MODELS_DIR": str(settings.models_dir),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "playground", "chat", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_a_template_error_is_one_message_on_the_page_the_api_and_the_cli(
    ctx: AppContext, app_url: str, broken_folder: Path, settings: Settings
) -> None:
    model = f"{broken_folder}@transformers"
    owner, updates = page_answer(InstructTab(ctx), "Hi", model)
    conversation, _, _, _, notice = updates[-1][:5]
    assert conversation[-1]["role"] == "assistant" and conversation[-1]["finish"] == "error"
    assert BROKEN in notice and "transformers failed on smollm2-broken-template" in notice
    reason, error = stored_finish(ctx, owner, updates)
    assert reason == "error" and BROKEN in error and error in notice

    with pytest.raises(Exception, match=BROKEN) as caught:
        Client(app_url, verbose=False).predict("Hi", api_name="/chat", model=model)
    assert "transformers failed on smollm2-broken-template" in str(caught.value)

    proc = cli(settings, "-m", model, "Hi")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and err.strip().splitlines()[-1].startswith("error: transformers failed")
    assert BROKEN in err and "Traceback" not in err


def worker_pids(ctx: AppContext, model_id: str) -> list[int]:
    return [w.pid for w in loaded(ctx.registry, model_id).workers() if w.busy]


def test_a_killed_worker_is_interrupted_on_the_page_the_api_and_the_cli(
    ctx: AppContext, app_url: str, settings: Settings
) -> None:
    model = "smollm2-135m-instruct@onnx"

    def kill_once(update: tuple[Any, ...]) -> None:
        turn = update[0][-1] if update[0] else {}
        if turn.get("role") == "assistant" and len(turn.get("content") or "") > 20 and not killed:
            killed.extend(worker_pids(ctx, model))
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    killed: list[int] = []
    owner, updates = page_answer(InstructTab(ctx), STORY, model, on_update=kill_once)
    assert killed, "the answer never streamed"
    conversation = updates[-1][0]
    assert conversation[-1]["finish"] == "interrupted" and "SIGKILL" in conversation[-1]["metrics"]["note"]
    assert stored_finish(ctx, owner, updates)[0] == "interrupted"

    job = Client(app_url, verbose=False).submit(STORY, api_name="/chat", model=model, max_new_tokens=1500)
    deadline = time.monotonic() + 60
    while not job.outputs() or len(job.outputs()[-1]) < 20:
        assert time.monotonic() < deadline, "/chat never streamed"
        time.sleep(0.05)
    for pid in worker_pids(ctx, model):
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(Exception, match=r"interrupted after \d+ characters: The engine process .* SIGKILL"):
        job.result(timeout=60)

    proc = cli(settings, "-m", model, "--max-new-tokens", "1500", STORY)
    assert proc.stdout is not None
    first = proc.stdout.read(20)  # the answer streams
    assert first
    engines = _engine_children(proc.pid)
    for child in engines:
        child.kill()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "[interrupted" in err, err
    assert len(first + out) > 20


def _engine_children(pid: int) -> Iterator[psutil.Process]:
    """The CLI's worker processes (the spawned engine, not multiprocessing's resource tracker)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [
            p
            for p in psutil.Process(pid).children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline())
        ]
        if found:
            return iter(found)
        time.sleep(0.1)
    pytest.fail("the CLI started no engine process")


def test_an_engine_error_mid_answer_is_one_message_on_the_page_and_the_api(tmp_path: Path) -> None:
    """In the app's own process (PLAYGROUND_ENGINE_PROCESSES=0), transformers' tokenizer fails after a
    few tokens: the page keeps the text and shows the engine's words; `/chat` says the same. (The CLI
    runs its engine in a process of its own that a test cannot break this way; its error line is the
    same code path as the template error's above.)"""
    ctx = AppContext.create(make_settings(tmp_path, PLAYGROUND_ENGINE_PROCESSES="0"))
    model = "smollm2-135m-instruct@transformers"
    try:
        engine = loaded(ctx.registry, model)
        decode, calls = engine._tokenizer.decode, [0]

        def failing(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] % 10 == 0:
                raise ValueError("the tokenizer broke")
            return decode(*args, **kwargs)

        engine._tokenizer.decode = failing
        owner, updates = page_answer(InstructTab(ctx), STORY, model)
        conversation, _, _, _, notice = updates[-1][:5]
        assert conversation[-1]["finish"] == "error" and conversation[-1]["content"], (
            "the text so far is kept"
        )
        assert "transformers failed on SmolLM2-135M-Instruct: ValueError: the tokenizer broke" in notice
        reason, error = stored_finish(ctx, owner, updates)
        assert reason == "error" and error in notice
        with serving(ctx) as url, pytest.raises(Exception, match="ValueError: the tokenizer broke"):
            Client(url, verbose=False).predict(STORY, api_name="/chat", model=model)
    finally:
        ctx.close()
