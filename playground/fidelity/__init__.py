"""How much a variant of a model (ONNX int4, say) changes what the model says, measured against a reference
variant of the same model (transformers float32): one text fed through both, token by token.

    measure(registry, model, reference, text) -> Fidelity

Per token: the KL divergence of the model's next-token distribution from the reference's, and whether
their most likely tokens agree; in total: the mean KL, the share of positions whose top tokens agree, and
each variant's perplexity on the text. `python -m playground fidelity` and the Arena's "Compare token by
token" draw it (cli.py, ui/arena_fidelity.py).
"""

from .compute import Fidelity, TokenFidelity, compare
from .service import MAX_TOKENS, measure

__all__ = ["MAX_TOKENS", "Fidelity", "TokenFidelity", "compare", "measure"]
