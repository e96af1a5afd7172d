"""ZeroGPU: the `gpu` wrapper and the transformers path through it.

Nothing here has a ZeroGPU, so the real `spaces.GPU` cannot run: locally only the no-op path runs for
real. To check that the wrapper is applied where it should be, one test puts a stand-in `spaces` module in
sys.modules (beside the real code, never instead of it): its GPU() records the function it wraps and, like
ZeroGPU, runs it in a forked process, pickling the arguments and every item yielded. The generation it
runs is the real one, with the embedded model on transformers.
"""

from __future__ import annotations

import inspect
import multiprocessing
import pickle
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from playground import zerogpu
from playground.context import AppContext
from playground.options import GenerationOptions
from playground.providers.local.hf import TransformersModel, generate_ids
from playground.types import Finish, Message, ModelSpec
from tests.support import QUESTION, make_settings

SPEC = ModelSpec(id="smollm2@transformers", name="SmolLM2", provider="transformers", context_window=8192)
GREEDY = GenerationOptions(temperature=0, max_new_tokens=24)


@pytest.fixture(autouse=True)
def _inactive() -> Iterator[None]:
    yield
    zerogpu.activate(False)


def _tokens(n: int) -> Iterator[int]:
    yield from range(n)


def test_no_op_off_zerogpu_and_without_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    assert zerogpu.gpu(_tokens) is _tokens  # not on ZeroGPU
    monkeypatch.setitem(sys.modules, "spaces", None)  # `import spaces` fails: not installed
    zerogpu.activate(True)
    assert zerogpu.active()
    assert zerogpu.gpu(_tokens) is _tokens
    assert list(zerogpu.gpu(_tokens)(3)) == [0, 1, 2]


def test_refuses_what_zerogpu_cannot_run() -> None:
    async def answer() -> str:
        return "x"

    async def stream() -> Any:
        yield "x"

    def plain() -> int:
        return 1

    for fn in (answer, stream):
        with pytest.raises(NotImplementedError, match="synchronous"):
            zerogpu.gpu(fn)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="generator function"):
        zerogpu.gpu(plain)  # type: ignore[type-var]


def _forked(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Like spaces.GPU on ZeroGPU: the call runs in a forked process; arguments and items are pickled."""

    def run(queue: Any, payload: bytes) -> None:
        args = pickle.loads(payload)
        try:
            for item in fn(*args):
                queue.put(pickle.dumps(item))
        finally:
            queue.put(None)

    def wrapper(*args: Any) -> Iterator[Any]:
        context = multiprocessing.get_context("fork")
        queue = context.SimpleQueue()
        process = context.Process(target=run, args=(queue, pickle.dumps(args)), daemon=True)
        process.start()
        try:
            while (item := queue.get()) is not None:
                yield pickle.loads(item)
        finally:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()

    return wrapper


def _stand_in_spaces(calls: list[Any]) -> types.ModuleType:
    module = types.ModuleType("spaces")

    def GPU(fn: Callable[..., Iterator[Any]], duration: int | None = None) -> Callable[..., Iterator[Any]]:
        assert inspect.isgeneratorfunction(fn)
        calls.append((fn, duration))
        return _forked(fn)

    module.GPU = GPU  # type: ignore[attr-defined]
    return module


def _answer(model: TransformersModel) -> tuple[str, Finish]:
    events = list(model.events([Message("user", QUESTION)], GREEDY))
    finish = events[-1]
    assert isinstance(finish, Finish)
    return "".join(e for e in events if isinstance(e, str)), finish


def test_wrapped_generation_is_real_and_goes_through_spaces_gpu(
    monkeypatch: pytest.MonkeyPatch, embedded_hf_folder: Path
) -> None:
    calls: list[Any] = []
    monkeypatch.setitem(sys.modules, "spaces", _stand_in_spaces(calls))
    zerogpu.activate(True)
    model = TransformersModel(SPEC, embedded_hf_folder, threads=1)  # loaded in this (main) process
    try:
        text, finish = _answer(model)
        assert calls == [(generate_ids, zerogpu.DURATION_S)]  # spaces.GPU wrapped the generation
        assert "Paris" in text and finish.completion_tokens > 0, text  # real tokens, from the fork
        assert model.stats.running == 0 and model.stats.tokens_generated == finish.completion_tokens
    finally:
        model.close()


def test_no_op_wrapped_path_gives_the_same_answer_as_the_thread_path(embedded_hf_folder: Path) -> None:
    plain = TransformersModel(SPEC, embedded_hf_folder, threads=1)
    try:
        expected, _ = _answer(plain)
    finally:
        plain.close()
    zerogpu.activate(True)  # `spaces` is not installed here: gpu() is the no-op
    wrapped = TransformersModel(SPEC, embedded_hf_folder, threads=1)
    try:
        text, _ = _answer(wrapped)
        assert text == expected and "Paris" in text
        stream = wrapped.events(
            [Message("user", "Count from 1 to 100.")], GenerationOptions(max_new_tokens=200)
        )
        for _ in range(3):
            next(stream)
        stream.close()  # type: ignore[attr-defined]  # Stop: the generator and the generate() behind it end
        assert wrapped.stats.running == 0
    finally:
        wrapped.close()


def test_app_context_runs_engines_in_process_on_zerogpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "spaces", None)
    settings = make_settings(tmp_path, SPACES_ZERO_GPU="true")
    assert settings.zerogpu and settings.engine_processes
    ctx = AppContext.create(settings)
    try:
        assert zerogpu.active()
        assert ctx.settings.engine_processes is False  # forced: spaces.GPU forks this process
        onnx = ctx.registry.providers["onnx"]
        assert onnx.mode.processes is False  # type: ignore[attr-defined]
    finally:
        ctx.close()
