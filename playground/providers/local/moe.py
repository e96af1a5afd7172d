"""Which experts a mixture-of-experts model routes each generated token to, read by forward hooks.

Phi-3.5-MoE's routers (`model.layers.N.mlp.router`, PhimoeTopKRouter) return
`(router_logits [T, E], routing_weights [T, k], selected_experts [T, k])`: T is the prompt's length at
the prefill, then 1 per decode step. The hooks read what generate() computes anyway (no second forward
pass). `generate(output_router_logits=True)` returns no router data, hence the hooks.

A generated token's record is the routing of the step that produced it: the prompt's last position
for the first token (the rest of the prefill, the prompt's own tokens, is kept apart and only
counted), the previous token's step after that. The last token is never fed back, so this is the only
reading with one entry per generated token.

Several requests may run generate() on one model at once (threads of one process): each binds its
recording to the thread that runs its generate(), and the hooks file what they see under the calling
thread, so two requests' records never mix. The hooks are installed while at least one request is
recording and removed after the last one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...types import ExpertRecord, LayerRoute

log = logging.getLogger(__name__)

ROUTER_CLASSES = frozenset({"PhimoeTopKRouter"})


def find_routers(model: Any) -> list[Any]:
    """The router of each decoder layer, in layer order; [] for a model that is not a known MoE."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        return []
    routers = []
    for layer in layers:
        router = getattr(getattr(layer, "mlp", None), "router", None)
        if router is None or type(router).__name__ not in ROUTER_CLASSES:
            return []
        routers.append(router)
    return routers


def layer_route(logits: Any, weights: Any, selected: Any, row: int = -1) -> LayerRoute:
    """One position of a router's output as a LayerRoute (probabilities: softmax of the logits)."""
    import torch

    chosen = [int(e) for e in selected[row].tolist()]
    probs = torch.softmax(logits[row].float(), dim=-1)
    return LayerRoute(
        experts=tuple(chosen),
        weights=tuple(float(w) for w in weights[row].float().tolist()),
        probs=tuple(float(probs[e]) for e in chosen),
    )


class Recording:
    """The routing of one request, step by step and layer by layer, filled by the hooks.

    The hooks run in the generate() thread; `record` is called from the thread that decodes the tokens,
    after generate() has handed over the token (so its step is complete).
    """

    def __init__(self, layers: int, num_experts: int) -> None:
        self.num_experts = num_experts
        self.prompt_tokens = 0
        self._steps: list[list[LayerRoute]] = [[] for _ in range(layers)]  # per layer, one per step
        self._lock = threading.Lock()

    @property
    def layers(self) -> int:
        return len(self._steps)

    def add(self, layer: int, output: Any) -> None:
        """A router's output for one forward step (from its hook)."""
        logits, weights, selected = output[0], output[1], output[2]
        route = layer_route(logits, weights, selected)
        with self._lock:
            steps = self._steps[layer]
            if not steps:  # the prefill: only its last position produced a token
                self.prompt_tokens = int(logits.shape[0])
            steps.append(route)

    def steps(self) -> int:
        """Forward steps seen by every layer so far."""
        with self._lock:
            return min((len(s) for s in self._steps), default=0)

    def record(self, index: int, token_id: int, token: str) -> ExpertRecord | None:
        """The record of the answer's token number `index`; None if its step was not seen (logged)."""
        with self._lock:
            if any(len(steps) <= index for steps in self._steps):
                log.warning("No routing recorded for token %d; the expert map skips it", index)
                return None
            layers = tuple(steps[index] for steps in self._steps)
        return ExpertRecord(index, token_id, token, self.num_experts, layers)


class RouterTap:
    """Forward hooks on a model's routers, dispatching each call to the recording of its thread."""

    def __init__(self, routers: list[Any]) -> None:
        self.routers = routers
        self.num_experts = int(getattr(routers[0], "num_experts", 0) or routers[0].weight.shape[0])
        self.top_k = int(getattr(routers[0], "top_k", 0))
        self._active: dict[int, Recording] = {}
        self._handles: list[Any] = []
        self._lock = threading.Lock()

    @classmethod
    def of(cls, model: Any) -> RouterTap | None:
        """A tap for a mixture-of-experts model; None for any other model."""
        routers = find_routers(model)
        return cls(routers) if routers else None

    @property
    def installed(self) -> bool:
        return bool(self._handles)

    def new_recording(self) -> Recording:
        return Recording(len(self.routers), self.num_experts)

    @contextmanager
    def bind(self, recording: Recording) -> Iterator[Recording]:
        """Record what the routers compute in the calling thread (the one that runs generate())."""
        ident = threading.get_ident()
        with self._lock:
            if not self._active:
                self._install()
            self._active[ident] = recording
        try:
            yield recording
        finally:
            with self._lock:
                self._active.pop(ident, None)
                if not self._active:
                    self._remove()

    def _install(self) -> None:
        for layer, router in enumerate(self.routers):
            self._handles.append(router.register_forward_hook(self._hook(layer)))

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, layer: int) -> Any:
        active = self._active

        def hook(module: Any, args: Any, output: Any) -> None:
            recording = active.get(threading.get_ident())
            if recording is not None:
                recording.add(layer, output)

        return hook
