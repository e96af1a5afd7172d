"""Components more than one tab uses: the model picker and the generation parameters."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import gradio as gr

from ..catalog import SAMPLING_KEYS, sampling_for
from ..errors import InvalidOptionsError, PlaygroundError
from ..options import GenerationOptions
from ..registry import ModelRow, Registry
from ..text import valid_text
from ..types import Capability, ModelSpec

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct@onnx"
SAMPLING_FIELDS = SAMPLING_KEYS  # the parameters a model's recommended sampling sets
DEMO_MAX_NEW_TOKENS = 48  # a random-weight demo writes gibberish: a few words show the mechanism


def default_model(
    choices: Sequence[tuple[str, str]], preferred: str | None = None, registry: Registry | None = None
) -> str:
    """Of a picker's `model_choices`: the owner's `preferred` model (PLAYGROUND_DEFAULT_MODEL) where it is
    listed and ready, else the embedded model where it is listed, else the first (ready) one."""
    listed = {v for _, v in choices}
    if preferred and registry is not None:
        try:
            spec = registry.resolve(preferred)  # an id or a catalog key ("phi-3.5-mini")
        except PlaygroundError as exc:
            log.warning("PLAYGROUND_DEFAULT_MODEL: %s", exc)
        else:
            if spec.id in listed and registry.availability(spec).available:
                return spec.id
    if not choices or DEFAULT_MODEL in listed:
        return DEFAULT_MODEL  # none listed: asking for it says which models are offered
    return choices[0][1]


def recommended(spec: ModelSpec) -> GenerationOptions:
    """The parameters to show for a model: its recommended sampling, else the playground's defaults."""
    sampling = sampling_for(spec)
    base = (
        GenerationOptions(max_new_tokens=DEMO_MAX_NEW_TOKENS)
        if spec.extra.get("demo")
        else GenerationOptions()
    )
    return sampling.apply(base) if sampling is not None else base


def sampling_note(spec: ModelSpec) -> str:
    """One line under the parameters: where the sampling values come from, with the link."""
    sampling = sampling_for(spec)
    if sampling is None:
        return "Sampling: the playground's defaults (the catalog has no recommendation for this model)."
    if not sampling.values:
        return f"Sampling: the playground's defaults. {sampling.note} [Source]({sampling.source})"
    values = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in sampling.values.items())
    return f"Sampling recommended for {spec.name}: {values}. [Source]({sampling.source})"


def model_label(row: ModelRow) -> str:
    label = f"{row.spec.name} · {row.spec.engine_label}"
    return label if row.availability.available else f"{label} — {row.availability.reason}"


def model_choices(registry: Registry, capability: Capability = Capability.CHAT) -> list[tuple[str, str]]:
    """(label, id) pairs, available models first."""
    rows = sorted(registry.rows(capability), key=lambda r: not r.availability.available)
    return [(model_label(r), r.spec.id) for r in rows]


def model_card(spec: ModelSpec, registry: Registry) -> str:
    """A few lines about the chosen model: size, window, engine, and whether it is ready."""
    state = registry.availability(spec)
    size = f"{spec.params_total} parameters" if spec.params_total else ""
    if spec.params_active:
        size += f" ({spec.params_active} active)"
    facts = [
        f"**{spec.name}**",
        spec.family,
        size,
        f"{spec.context_window:,}-token window",
        spec.engine_label,
    ]
    status = "✅ ready" if state.available else f"⛔ not ready: {state.reason}"
    return " · ".join(f for f in facts if f) + f"\n\n{status}"


@dataclass
class OptionInputs:
    """The parameter components, in the order `options_from` takes their values."""

    components: list[gr.components.Component]

    @property
    def sampling(self) -> list[gr.components.Component]:
        """The components a model's recommended sampling sets, in SAMPLING_FIELDS order."""
        temperature, top_p, top_k, _, repetition_penalty, *_ = self.components
        return [temperature, top_p, top_k, repetition_penalty]


def option_inputs(prefix: str, initial: GenerationOptions | None = None) -> OptionInputs:
    """Temperature, top_p, top_k, max new tokens, repetition penalty, seed, stop sequences."""
    d = initial or GenerationOptions()
    return OptionInputs(
        [
            gr.Slider(
                0,
                2,
                value=d.temperature,
                step=0.05,
                label="Temperature",
                info="0 = greedy",
                elem_id=f"{prefix}-temperature",
            ),
            gr.Slider(0.05, 1, value=d.top_p, step=0.05, label="Top-p", elem_id=f"{prefix}-top-p"),
            gr.Slider(
                0, 200, value=d.top_k, step=1, label="Top-k", info="0 = off", elem_id=f"{prefix}-top-k"
            ),
            gr.Slider(
                16,
                4096,
                value=d.max_new_tokens,
                step=16,
                label="Max new tokens",
                elem_id=f"{prefix}-max-new-tokens",
            ),
            gr.Slider(
                0.8,
                1.5,
                value=d.repetition_penalty,
                step=0.01,
                label="Repetition penalty",
                elem_id=f"{prefix}-repetition-penalty",
            ),
            gr.Number(value=-1, precision=0, label="Seed", info="-1 = random", elem_id=f"{prefix}-seed"),
            gr.Textbox(
                label="Stop sequences", info="one per line", lines=2, max_lines=4, elem_id=f"{prefix}-stop"
            ),
        ]
    )


OPTION_NAMES = ("temperature", "top_p", "top_k", "max_new_tokens", "repetition_penalty", "seed", "stop")


def options_from(*values: object) -> GenerationOptions:
    """Validate the parameter values (OPTION_NAMES' order, then optionally num_crops: 0 or None for the
    model's own); a nonsense value becomes a clear message, not a crash."""
    names = OPTION_NAMES if len(values) == len(OPTION_NAMES) else (*OPTION_NAMES, "num_crops")
    named = {k: valid_text(v) if isinstance(v, str) else v for k, v in zip(names, values, strict=True)}
    if named.get("num_crops") in (0, 0.0, ""):
        named["num_crops"] = None
    try:
        return GenerationOptions.parse(**named)
    except InvalidOptionsError:
        raise
    except (TypeError, ValueError) as exc:
        raise InvalidOptionsError(f"Invalid generation parameters: {exc}") from None
