"""transformers: a local folder, a GGUF file, or a downloaded hub snapshot, streamed from a thread.

generate() runs in a worker thread and pushes token ids to a queue; the consuming generator decodes
them. Its `finally` sets an Event that a StoppingCriteria checks, so Stop ends generate() at the next
token, not at max_new_tokens.

On ZeroGPU (zerogpu.active()), generate() runs in `generate_ids`, a generator function wrapped with
`spaces.GPU`: it runs in a forked process that holds the GPU, finds the model (loaded in the main process
before the fork) by a key, and yields token ids; the inputs go there on the CPU and are moved to the GPU
there. Closing the stream closes it (spaces then closes the generator in the fork, whose `finally` stops
generate()). An MoE model's expert records are not produced on that path.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from ... import zerogpu
from ...branching import check_given
from ...errors import ModelLoadError, PlaygroundError, ProviderError
from ...options import GenerationOptions
from ...types import Chunk, ExpertRecord, Finish, FinishReason, Message, ModelSpec, TokenRecord
from ..base import Forced, StopMatcher, finish_reason_for, timed
from . import hf_vision
from .chat_template import phi_format
from .forcing import fitted, forced
from .guided import guided_processor
from .moe import Recording, RouterTap
from .stats import EngineStats
from .token_probs import TokenRecorder

_END = object()
_LOADED: dict[str, TransformersModel] = {}  # by key: what a forked ZeroGPU call finds the model by


def pick_device() -> tuple[str, Any]:
    """CUDA with bfloat16 (or float16) when present, else the CPU with float32."""
    import torch

    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return "cuda", dtype
    return "cpu", torch.float32


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def leave_a_core_free() -> None:
    """On the CPU, torch's threads wait for each other at every op: with one per core, any other busy
    thread (the web server, a browser, another process) stalls them all. Measured on a loaded 2-core
    machine: 3.6 tok/s with 2 threads, 9.2 with 1 (9.9 and 9.8 when it was quieter). A lower setting
    (OMP_NUM_THREADS, torch.set_num_threads) is kept."""
    import torch

    cores = os.cpu_count() or 1
    if cores > 1 and torch.get_num_threads() >= cores:
        torch.set_num_threads(cores - 1)


def _vision_prompt(
    path: Path, gguf_file: str | None, trust_remote_code: bool
) -> hf_vision.VisionPrompt | None:
    """The processor-backed prompt builder of a folder that takes images (None for text-only models)."""
    if gguf_file or not hf_vision.is_vision_folder(path):
        return None
    processor = hf_vision.load_processor(path, trust_remote_code=trust_remote_code)
    return hf_vision.VisionPrompt(processor, hf_vision.model_type(path))


def sampling_kwargs(options: GenerationOptions) -> dict[str, Any]:
    """The options as generate() arguments, but max_new_tokens, pad_token_id and the stopping criteria
    (which need the model): the sampling settings cleared when greedy, top_k 0 as None. Get code uses it too."""
    kwargs: dict[str, Any] = {
        "do_sample": not options.greedy,
        "repetition_penalty": options.repetition_penalty,
    }
    if options.greedy:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(temperature=options.temperature, top_p=options.top_p, top_k=options.top_k or None)
    return kwargs


class _TokenQueue:
    """A streamer for generate(): token ids of the answer (not the prompt) onto a queue."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._seen_prompt = False

    def put(self, value: Any) -> None:
        if not self._seen_prompt:
            self._seen_prompt = True
            return
        for token in value.reshape(-1).tolist():
            self.queue.put(int(token))

    def end(self) -> None:
        self.queue.put(_END)


class TransformersModel:
    """One model loaded with transformers."""

    def __init__(
        self,
        spec: ModelSpec,
        path: Path | str,
        *,
        gguf_file: str | None = None,
        trust_remote_code: bool = False,
        threads: int | None = None,
        stats: EngineStats | None = None,
    ) -> None:
        self.spec = spec
        self.stats = stats or EngineStats()
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.device, dtype = pick_device()
            if self.device == "cpu":
                if threads:
                    import torch

                    torch.set_num_threads(threads)
                else:
                    leave_a_core_free()
            self.threads = _torch_threads()
            kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
            if gguf_file:
                kwargs["gguf_file"] = gguf_file
            self._vision = _vision_prompt(Path(path), gguf_file, trust_remote_code)
            if self._vision is not None:  # the processor's tokenizer knows the image tokens
                self._tokenizer: Any = self._vision.processor.tokenizer
                model: Any = hf_vision.model_class(Path(path)).from_pretrained(
                    str(path), dtype=dtype, **kwargs
                )
            else:
                self._tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
                model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **kwargs)
            self._model: Any = model.to(self.device).eval()
        except PlaygroundError:
            raise
        except Exception as exc:  # OSError, ValueError, ImportError...: all "cannot load"
            raise ModelLoadError(f"transformers could not load {path}: {exc}") from exc
        eos = self._model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self._eos = tuple(int(t) for t in eos if t is not None)
        self._tap = RouterTap.of(self._model)  # mixture-of-experts: records each token's experts
        self._gpu = zerogpu.active()  # generate through spaces.GPU (ZeroGPU), see generate_ids
        self.key = f"{spec.id}#{id(self)}"
        _LOADED[self.key] = self

    def render_prompt(self, messages: Sequence[Message]) -> str:
        if self._vision is not None:
            return self._vision.render(messages)
        if not self._tokenizer.chat_template:
            return phi_format(messages)
        return str(
            self._tokenizer.apply_chat_template(
                [m.to_dict() for m in messages], tokenize=False, add_generation_prompt=True
            )
        )

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_prompt(self, messages: Sequence[Message]) -> int:
        """The prompt's tokens with each image's tokens, as the processor expands them."""
        if self._vision is not None:
            return self._vision.count(messages)
        return self.count_tokens(self.render_prompt(messages))

    def teacher_forced(self, text: str, limit: int) -> Forced:
        """One forward pass over the text's tokens: every position's logits at once."""
        import torch

        ids, total = fitted(self._tokenizer(text)["input_ids"], limit, self.spec.context_window)
        with torch.inference_mode():
            logits = self._model(torch.tensor([ids], device=self.device)).logits[0].float().cpu().numpy()
        return forced(ids, total, lambda one: str(self._tokenizer.decode(one)), logits)

    def _inputs(self, messages: Sequence[Message], prompt: str, options: GenerationOptions) -> Any:
        """The model's inputs: the processor's (token ids with image tokens, pixel values) for a vision
        model, else the tokenizer's."""
        if self._vision is not None:
            inputs = self._vision.inputs(messages, prompt, options.num_crops)
        else:
            inputs = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        return inputs if self._gpu else inputs.to(self.device)  # on ZeroGPU: moved in the GPU process

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Iterator[Chunk]:
        return timed(self.events(messages, options))

    def _generate_kwargs(self, options: GenerationOptions, stop: threading.Event) -> dict[str, Any]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        stats = self.stats

        class _EventStop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                stats.token()
                return stop.is_set()

        return {
            "max_new_tokens": options.max_new_tokens,
            "stopping_criteria": StoppingCriteriaList([_EventStop()]),
            "pad_token_id": self._tokenizer.pad_token_id or (self._eos[0] if self._eos else None),
            **sampling_kwargs(options),
        }

    def _scores_tap(self, kwargs: dict[str, Any]) -> list[Any]:
        """Add a logits processor that keeps each step's scores (the token view): generate() runs it
        after its penalties and before the temperature, top-k and top-p, which TokenRecorder applies.
        The list it fills, one row per step, in the generate() thread."""
        from transformers import LogitsProcessor

        rows: list[Any] = []

        class _Keep(LogitsProcessor):
            def __call__(self, input_ids: Any, scores: Any) -> Any:
                rows.append(scores[0].detach().float().cpu().numpy())
                return scores

        _add_processor(kwargs, _Keep())
        return rows

    def events(
        self, messages: Sequence[Message], options: GenerationOptions, cancel: threading.Event | None = None
    ) -> Iterator[str | ExpertRecord | TokenRecord | Finish]:
        """About one event per generated token (and, for an MoE model, its ExpertRecord), then the Finish.
        Setting `cancel` (from another thread) ends generate() at the next token (its StoppingCriteria sees
        it); so does closing the generator."""
        prompt = self.render_prompt(messages)
        check_given(options.answer_prefix, _vocabulary(self._model), self.spec.name)
        inputs = _with_prefix(self._inputs(messages, prompt, options), options.answer_prefix)
        prompt_len = int(inputs["input_ids"].shape[1])
        room = max(1, self.spec.context_window - prompt_len)
        options = options.model_copy(update={"max_new_tokens": min(options.max_new_tokens, room)})
        stop = cancel or threading.Event()
        if self._gpu:
            yield from self._events_on_gpu(inputs, options, stop, prompt_len)
            return
        recording = self._tap.new_recording() if self._tap is not None else None
        kwargs = self._generate_kwargs(options, stop)
        if options.response_format is not None:  # structured output: llguidance's masks, first in line
            _add_processor(kwargs, guided_processor(self._tokenizer, options.response_format))
        scores = self._scores_tap(kwargs) if options.logprobs else None
        self.stats.begin()
        tokens = _generated(
            lambda streamer: self._run(inputs, streamer, kwargs, options.seed, recording),
            stop,
            name=f"generate-{self.spec.id}",
        )
        try:
            recorder = None
            if scores is not None:
                prompt_ids = inputs["input_ids"][0].tolist()
                recorder = (TokenRecorder(options, self._text_of, prompt_ids, penalised=True), scores)
            yield from self._decode(tokens, stop, options, prompt_len, recording, recorder)
        finally:
            tokens.close()

    def _events_on_gpu(
        self, inputs: Any, options: GenerationOptions, stop: threading.Event, prompt_len: int
    ) -> Iterator[str | ExpertRecord | TokenRecord | Finish]:
        """The answer from `generate_ids` through zerogpu.gpu (spaces.GPU on ZeroGPU, else called here)."""
        plain = {
            "max_new_tokens": options.max_new_tokens,
            "pad_token_id": self._tokenizer.pad_token_id or (self._eos[0] if self._eos else None),
            **sampling_kwargs(options),
        }
        tokens = zerogpu.gpu(generate_ids)(self.key, dict(inputs), plain, options.seed)
        self.stats.begin()
        try:
            yield from self._decode(self._counted(tokens), stop, options, prompt_len)
        finally:  # a failure on the GPU (spaces re-raises it as its own error) is translated by the guard
            tokens.close()
            self.stats.end()

    def _counted(self, tokens: Iterator[int]) -> Iterator[int]:
        for token in tokens:
            self.stats.token()
            yield token

    def _run(
        self,
        inputs: Any,
        streamer: _TokenQueue,
        kwargs: dict[str, Any],
        seed: int | None,
        recording: Recording | None = None,
    ) -> None:
        import torch

        try:
            if seed is not None:
                torch.manual_seed(seed)
            with torch.inference_mode(), self._bind(recording):
                self._model.generate(**inputs, streamer=streamer, **kwargs)
        finally:
            self.stats.end()

    def _bind(self, recording: Recording | None) -> AbstractContextManager[object]:
        """The router hooks file this thread's routing under `recording` (nothing to do without one)."""
        if recording is None or self._tap is None:
            return nullcontext()
        return self._tap.bind(recording)

    def _decode(
        self,
        tokens: Iterator[int],
        stop: threading.Event,
        options: GenerationOptions,
        prompt_len: int,
        recording: Recording | None = None,
        recorder: tuple[TokenRecorder, list[Any]] | None = None,
    ) -> Iterator[str | ExpertRecord | TokenRecord | Finish]:
        ids = list(options.answer_prefix)  # a branch: its text comes first, as if it had been drawn
        given = len(ids)
        shown = ""
        stopper = StopMatcher(options.stop)
        if ids:  # (a given token that ends inside a character: that character comes with the next)
            shown = self._tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")
            yield stopper.push(shown)
        for token in tokens:
            ids.append(token)
            step = len(ids) - 1 - given
            if recorder is not None:  # the step's scores were kept before its token was handed over
                yield recorder[0].record(recorder[1][step], token)
                recorder[1][step] = None  # one step's scores at a time (a vocabulary's floats each)
            if recording is not None:
                record = recording.record(step, token, self._tokenizer.decode([token]))
                if record is not None:
                    yield record
            text = self._tokenizer.decode(ids, skip_special_tokens=True)
            if text.endswith("\ufffd"):
                continue  # half of a multi-byte character: wait for the rest
            yield stopper.push(text[len(shown) :])
            shown = text
            if stopper.hit:
                stop.set()
                break
            if stop.is_set():  # Stop pressed: leave now (on ZeroGPU this closes the GPU call)
                break
        yield "" if stopper.hit else stopper.flush()
        last = ids[-1] if len(ids) > given else None
        reason = finish_reason_for(last, self._eos, len(ids) - given, options.max_new_tokens)
        if stop.is_set() and not stopper.hit:
            reason = FinishReason.CANCELLED
        yield Finish(prompt_len, len(ids) - given, reason)

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self._tokenizer(text, add_special_tokens=False)["input_ids"]]

    def next_logits(self, ids: Sequence[int]) -> Iterator[Any]:
        """Teacher forcing (fidelity.py): for each position of `ids` but the last, the logits of the
        token after it, from one forward pass."""
        import torch

        with torch.inference_mode():
            tensor = torch.tensor([list(ids)], device=self.device)
            logits = self._model(input_ids=tensor).logits[0, :-1].float().cpu().numpy()
        yield from logits

    def _text_of(self, token: int) -> str:
        return str(self._tokenizer.decode([token]))

    def close(self) -> None:
        _LOADED.pop(self.key, None)
        self._model = None


def _vocabulary(model: Any) -> int | None:
    """How many tokens the model's input embeddings hold (None when it has none to ask)."""
    try:
        return int(model.get_input_embeddings().num_embeddings)
    except (AttributeError, TypeError, ValueError):
        return None


def _with_prefix(inputs: Any, prefix: Sequence[int]) -> Any:
    """The model's inputs with a branch's given tokens after the prompt's (and its attention mask
    extended): generate() continues after them, and its streamer skips them with the prompt."""
    if not prefix:
        return inputs
    import torch

    ids = inputs["input_ids"]
    given = torch.tensor([list(prefix)], dtype=ids.dtype, device=ids.device)
    inputs["input_ids"] = torch.cat([ids, given], dim=1)
    mask = inputs.get("attention_mask")
    if mask is not None:
        inputs["attention_mask"] = torch.cat([mask, torch.ones_like(given, dtype=mask.dtype)], dim=1)
    return inputs


def _add_processor(kwargs: dict[str, Any], processor: Any) -> None:
    """Add a logits processor to generate()'s arguments (after those already there)."""
    from transformers import LogitsProcessorList

    kwargs.setdefault("logits_processor", LogitsProcessorList()).append(processor)


def _queued(streamer: _TokenQueue) -> Iterator[int]:
    """The token ids generate() puts on the streamer's queue, until it ends."""
    while True:
        token = streamer.queue.get()
        if token is _END:
            return
        assert isinstance(token, int)
        yield token


def generate_ids(
    key: str, inputs: dict[str, Any], kwargs: dict[str, Any], seed: int | None
) -> Generator[int, None, None]:
    """generate() for the model registered under `key`, yielding the answer's token ids (plain ints).

    The function zerogpu.gpu wraps: on ZeroGPU it runs in a forked process holding the GPU (the model was
    loaded before the fork; `inputs` are CPU tensors, moved to the model's device here). Closing it stops
    generate() at the next token."""
    model = _LOADED.get(key)
    if model is None or model._model is None:
        raise ProviderError(
            "The model was unloaded before its answer started: ask again.", provider="transformers"
        )
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    engine = model._model
    moved = {
        name: value.to(engine.device) if hasattr(value, "to") else value for name, value in inputs.items()
    }
    stop = threading.Event()

    class _EventStop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> bool:
            return stop.is_set()

    def run(streamer: _TokenQueue) -> None:
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            engine.generate(
                **moved, streamer=streamer, stopping_criteria=StoppingCriteriaList([_EventStop()]), **kwargs
            )

    yield from _generated(run, stop, name="generate-gpu")


def _generated(
    run: Callable[[_TokenQueue], None], stop: threading.Event, *, name: str
) -> Generator[int, None, None]:
    """generate() in a thread of its own (`run` calls it with this queue as its streamer): the token ids
    as they come, then its failure raised here. Closed early (Stop), it sets `stop`, which
    generate()'s StoppingCriteria sees at the next token, and waits for the thread."""
    streamer = _TokenQueue()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run(streamer)
        except Exception as exc:  # raised below, in the consumer
            errors.append(exc)
            streamer.end()

    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    ended = False
    try:
        yield from _queued(streamer)
        ended = True  # generate() finished by itself: `stop` stays unset (the answer was not cancelled)
        worker.join()
        if errors:
            raise errors[0]  # generate()'s own exception, in the consumer's thread (the guard translates it)
    finally:
        if not ended:
            stop.set()
        worker.join(timeout=30)
