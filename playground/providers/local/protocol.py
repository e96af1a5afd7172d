"""The protocol between the app and an engine worker process: small, typed, pickled over a Pipe.

One worker holds one loaded model and generates one answer at a time. Every message is a frozen
dataclass; the app sends the first column, the worker answers with the second:

    app -> worker                          worker -> app
    Load(recipe, threads)             ->   Loaded(pid, load_s, threads)      or Failed(0, kind, message)
    Generate(rid, messages, options)  ->   Event(rid, chunk) ...             (text deltas, typed records,
                                           then the chunk with the metrics)
                                           Ended(rid, tokens, after_cancel)  always last, even after Failed
                                      ->   Failed(rid, kind, message)        the engine raised
    Cancel(rid)                       ->   (the stream ends within one token: Ended)
    Call(rid, method, args)           ->   Reply(rid, value)                 or Failed(rid, kind, message)
    Shutdown()                        ->   (the process exits)

`rid` (request id) is chosen by the app and unique per worker; `Call` is answered even while an answer
is being generated (the worker reads its pipe in a thread that only reads, and answers calls on
another). `Ended.after_cancel` is the number of tokens the engine produced after the worker received
the Cancel (0 when none came): the proof that Stop stops. `Failed.kind` is the name of one of our error classes (playground.errors),
so the app raises the same type the engine would have raised in-process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...options import GenerationOptions
from ...types import Chunk, Message, ModelSpec

EngineName = Literal["onnx", "transformers"]
CallMethod = Literal["render_prompt", "count_tokens", "count_prompt", "teacher_forced"]


@dataclass(frozen=True)
class Recipe:
    """How to load one model: everything a fresh process needs, nothing it must share."""

    engine: EngineName
    spec: ModelSpec
    path: Path
    gguf_file: str | None = None
    trust_remote_code: bool = False


# app -> worker


@dataclass(frozen=True)
class Load:
    recipe: Recipe
    threads: int | None = None


@dataclass(frozen=True)
class Generate:
    rid: int
    messages: tuple[Message, ...]
    options: GenerationOptions


@dataclass(frozen=True)
class Cancel:
    rid: int


@dataclass(frozen=True)
class Call:
    rid: int
    method: CallMethod
    args: tuple[object, ...] = ()


@dataclass(frozen=True)
class Shutdown:
    pass


# worker -> app


@dataclass(frozen=True)
class Loaded:
    pid: int
    load_s: float
    threads: int | None = None


@dataclass(frozen=True)
class Event:
    rid: int
    chunk: Chunk


@dataclass(frozen=True)
class Ended:
    rid: int
    tokens: int
    after_cancel: int = 0


@dataclass(frozen=True)
class Reply:
    rid: int
    value: object = None


@dataclass(frozen=True)
class Failed:
    rid: int
    kind: str
    message: str


ToWorker = Load | Generate | Cancel | Call | Shutdown
FromWorker = Loaded | Event | Ended | Reply | Failed
