"""ONNX Runtime GenAI: a model folder with genai_config.json, streamed by a plain pull loop.

No thread: closing the generator (Stop, Ctrl-C) ends the loop, and with it the engine's work.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ...branching import check_given
from ...errors import ModelLoadError
from ...images import read_bytes
from ...options import GenerationOptions
from ...types import Chunk, Finish, FinishReason, Message, ModelSpec, TokenRecord
from ..base import Forced, StopMatcher, finish_reason_for, timed
from .capabilities import genai_model, genai_vision
from .chat_template import images_in_order, phi_format
from .forcing import fitted, forced
from .stats import EngineStats
from .token_probs import TokenRecorder


def search_options(options: GenerationOptions) -> dict[str, Any]:
    """The options as ONNX Runtime GenAI's search options, but max_length (which needs the prompt's
    length): sampling only when not greedy, top_k as it is, the seed as random_seed. Get code uses it too."""
    search: dict[str, Any] = {
        "do_sample": not options.greedy,
        "repetition_penalty": options.repetition_penalty,
    }
    if not options.greedy:
        search.update(temperature=options.temperature, top_p=options.top_p, top_k=options.top_k)
    if options.seed is not None:
        search["random_seed"] = options.seed
    return search


class OnnxModel:
    """One loaded ONNX Runtime GenAI model."""

    def __init__(
        self, spec: ModelSpec, folder: Path, *, threads: int | None = None, stats: EngineStats | None = None
    ) -> None:
        self.spec = spec
        self.folder = Path(folder)
        self.stats = stats or EngineStats()
        self.threads = threads
        try:
            import onnxruntime_genai as og

            self._og = og
            config = og.Config(str(self.folder))
            if threads:  # fixed at load: the engine's intra-op thread pool
                options = {"session_options": {"intra_op_num_threads": threads, "inter_op_num_threads": 1}}
                config.overlay(json.dumps({"model": {"decoder": options}}))
            self._model = og.Model(config)
            self._tokenizer = og.Tokenizer(self._model)
            # A Phi-3/3.5-vision build: its processor takes the prompt with <|image_N|> tags and the images
            self._processor: Any = None
            if genai_vision(self.folder) and hasattr(self._model, "create_multimodal_processor"):
                self._processor = self._model.create_multimodal_processor()
        except Exception as exc:  # the engine raises RuntimeError for everything
            raise ModelLoadError(f"ONNX Runtime GenAI could not load {self.folder}: {exc}") from exc
        self._vocabulary = _vocabulary(self.folder)
        template = self.folder / "chat_template.jinja"
        self._template = template.read_text() if template.is_file() else None
        self._eos = tuple(int(t) for t in self._tokenizer.eos_token_ids)

    def render_prompt(self, messages: Sequence[Message]) -> str:
        if self._processor is not None:
            return phi_format(messages)  # the vision builds' format: numbered image tags, across turns
        payload = json.dumps([m.to_dict() for m in messages])
        try:
            return str(
                self._tokenizer.apply_chat_template(
                    payload, template_str=self._template, add_generation_prompt=True
                )
            )
        except Exception:  # no usable template in the folder: the Phi format is the fallback
            return phi_format(messages)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text))

    def count_prompt(self, messages: Sequence[Message]) -> int:
        """The prompt's tokens with each image's, as the multimodal processor expands them."""
        prompt = self.render_prompt(messages)
        if self._processor is None or not images_in_order(messages):
            return self.count_tokens(prompt)
        return int(self._vision_inputs(messages, prompt)["input_ids"].shape()[-1])

    def _vision_inputs(self, messages: Sequence[Message], prompt: str) -> Any:
        """The processor's named tensors (input ids with image tokens, pixel values, image sizes)."""
        pictures = [read_bytes(ref) for ref in images_in_order(messages)]
        return self._processor(prompt, images=self._og.Images.open_bytes(*pictures))

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> Iterator[Chunk]:
        return timed(self.events(messages, options))

    def _search_options(self, prompt_len: int, options: GenerationOptions) -> dict[str, Any]:
        limit = min(prompt_len + options.max_new_tokens, self.spec.context_window)
        return {"max_length": limit, **search_options(options)}

    def events(
        self, messages: Sequence[Message], options: GenerationOptions, cancel: threading.Event | None = None
    ) -> Iterator[str | TokenRecord | Finish]:
        """One event per generated token (a delta, possibly empty; with `options.logprobs`, its
        TokenRecord first), then the Finish. Setting `cancel` (from another thread) ends the loop before
        the next token; so does closing the generator. With `options.answer_prefix` (a branch) the
        prefix's text comes first: its tokens go in after the prompt's, and count with them.

        A token's record reads the logits before the step that draws it (`get_logits` runs the forward
        pass `generate_next_token` would run, so it costs no second one); they are the model's raw
        logits, and TokenRecorder applies the repetition penalty and the sampling settings."""
        cancel = cancel or threading.Event()
        og = self._og
        prompt = self.render_prompt(messages)
        inputs = None
        if self._processor is not None and images_in_order(messages):
            inputs = self._vision_inputs(messages, prompt)
            tokens = [int(t) for t in inputs["input_ids"].as_numpy().reshape(-1)]
        else:
            tokens = self._tokenizer.encode(prompt)
        prefix = list(options.answer_prefix)  # a branch: the answer's first tokens, given
        check_given(prefix, self._vocabulary, self.spec.name)
        params = og.GeneratorParams(self._model)
        search = self._search_options(len(tokens) + len(prefix), options)
        params.set_search_options(**search)
        if options.response_format is not None:  # structured output: llguidance inside the engine
            params.set_guidance(*options.response_format.guidance())
        generator = og.Generator(self._model, params)
        stream = self._tokenizer.create_stream()
        stopper = StopMatcher(options.stop)
        produced, last = 0, None
        limit = search["max_length"] - len(tokens) - len(prefix)
        self.stats.begin()
        try:
            if inputs is not None:
                generator.set_inputs(inputs)  # the image features go in with the prompt
            else:
                generator.append_tokens(tokens)
            if prefix:  # its text first, as if the engine had drawn it
                generator.append_tokens(prefix)
                yield stopper.push("".join(stream.decode(token) for token in prefix))
            recorder = self._recorder(options, [*tokens, *prefix])
            while not generator.is_done() and not stopper.hit and not cancel.is_set():
                logits = generator.get_logits() if recorder is not None else None
                generator.generate_next_token()
                last = int(generator.get_next_tokens()[0])
                produced += 1
                self.stats.token()
                if recorder is not None:
                    yield recorder.record(logits, last)
                yield stopper.push(stream.decode(last))
            yield stopper.flush() if not stopper.hit else ""
            reason = finish_reason_for(last, self._eos, produced, limit)
            if cancel.is_set() and not stopper.hit:
                reason = FinishReason.CANCELLED
            yield Finish(len(tokens) + len(prefix), produced, reason)
        finally:  # the engine's RuntimeError, ValueError or MemoryError is translated by the guard
            self.stats.end()
            del generator

    def _recorder(self, options: GenerationOptions, prompt: Sequence[int]) -> TokenRecorder | None:
        """Per-token records when the token view asks for them (`options.logprobs`)."""
        if not options.logprobs:
            return None
        return TokenRecorder(options, self._text_of, prompt)

    def _text_of(self, token: int) -> str:
        return str(self._tokenizer.decode([token]))

    def teacher_forced(self, text: str, limit: int) -> Forced:
        """The text's tokens appended in one go (the prompt's path): the logits output then holds every
        position's (get_logits() only the last)."""
        ids, total = fitted(self._tokenizer.encode(text), limit, self.spec.context_window)
        params = self._og.GeneratorParams(self._model)
        params.set_search_options(max_length=len(ids) + 1)
        generator = self._og.Generator(self._model, params)
        try:
            generator.append_tokens(ids)
            logits = generator.get_output("logits")
        finally:
            del generator
        return forced(ids, total, lambda one: str(self._tokenizer.decode(one)), logits)

    def close(self) -> None:
        self._model = None


def _vocabulary(folder: Path) -> int | None:
    """How many tokens the model has (genai_config.json's vocab_size; None when it does not say)."""
    size = genai_model(folder).get("vocab_size")
    return size if isinstance(size, int) else None
