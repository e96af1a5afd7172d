"""Structured output on transformers: llguidance's token masks, applied by a logits processor.

The matcher follows the answer token by token (each step consumes the token the step before chose) and
masks every token that would leave the grammar (a JSON schema or a regex, `ResponseFormat.guidance`);
once the grammar is complete only the end of the answer is allowed. ONNX Runtime GenAI does the same
inside the engine (`set_guidance`), with the same library.
"""

from __future__ import annotations

import functools
from typing import Any

from ...errors import InvalidOptionsError
from ...structured import ResponseFormat


@functools.lru_cache(maxsize=8)
def _ll_tokenizer(tokenizer: Any) -> Any:
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer)


def guided_processor(tokenizer: Any, response_format: ResponseFormat) -> Any:
    """A transformers LogitsProcessor that holds one answer to `response_format` (one per answer)."""
    import llguidance
    import llguidance.torch as lltorch
    from transformers import LogitsProcessor

    ll_tokenizer = _ll_tokenizer(tokenizer)
    kind, data = response_format.guidance()
    grammar = (
        llguidance.LLMatcher.grammar_from_regex(data)
        if kind == "regex"
        else llguidance.LLMatcher.grammar_from_json_schema(data)
    )
    matcher = llguidance.LLMatcher(ll_tokenizer, grammar)
    if matcher.is_error():
        raise InvalidOptionsError(f"The response format cannot be applied: {matcher.get_error()}")
    mask = lltorch.allocate_token_bitmask(1, ll_tokenizer.vocab_size)

    class _Guided(LogitsProcessor):
        def __init__(self) -> None:
            self.started = False

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if self.started:  # the token the step before chose
                matcher.consume_token(int(input_ids[0, -1]))
            self.started = True
            lltorch.fill_next_token_bitmask(matcher, mask, 0)
            lltorch.apply_token_bitmask_inplace(scores, mask.to(scores.device))
            return scores

    return _Guided()
