"""Generation parameters, validated at the boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InvalidOptionsError
from .structured import ResponseFormat


class GenerationOptions(BaseModel):
    """What a user may set for one answer; unset means the engine's default."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    temperature: float = Field(0.7, ge=0.0, le=2.0, description="0 means greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, le=1000, description="0 means no top-k filter")
    max_new_tokens: int = Field(512, ge=1, le=32768)
    repetition_penalty: float = Field(1.0, ge=0.5, le=2.0)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    stop: tuple[str, ...] = ()
    num_crops: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Phi-3/3.5-vision with transformers: crops per image (16 for one "
        "image, 4 for several frames); unset means the model's own setting",
    )

    logprobs: int = Field(
        0,
        ge=0,
        le=10,
        description="token view: each token's probability and this many top alternatives (0: off)",
    )
    response_format: ResponseFormat | None = Field(
        None, description="structured output: JSON, a JSON schema or a regex the answer is held to"
    )
    answer_prefix: tuple[int, ...] = Field(
        (),
        max_length=32768,
        description="a branch: the answer's first tokens (the model's own token ids), given; the engine "
        "continues after them",
    )

    @field_validator("stop", mode="before")
    @classmethod
    def _clean_stop(cls, value: object) -> tuple[str, ...]:
        if value is None or value == "":
            return ()
        if isinstance(value, str):
            value = value.split("\n")
        if not isinstance(value, list | tuple):
            raise ValueError("stop must be a list of strings")
        return tuple(str(s) for s in value if str(s))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def with_defaults(self, values: dict[str, float]) -> GenerationOptions:
        """These values for the fields the caller did not set (a model's recommended sampling)."""
        unset = {k: v for k, v in values.items() if k not in self.model_fields_set}
        return self.model_copy(update=unset) if unset else self

    @classmethod
    def parse(cls, **values: object) -> GenerationOptions:
        """Build from loose input (UI, CLI); None means default. Raises InvalidOptionsError."""
        cleaned = {k: v for k, v in values.items() if v is not None}
        if cleaned.get("seed") in (-1, "", "-1"):
            cleaned.pop("seed")
        try:
            return cls(**cleaned)  # type: ignore[arg-type]
        except ValidationError as exc:
            problems = "; ".join(_problem(err["loc"], err["msg"], values) for err in exc.errors())
            raise InvalidOptionsError(f"Invalid generation parameters: {problems}") from None


def _problem(loc: tuple[int | str, ...], message: str, values: dict[str, object]) -> str:
    """One field's problem, with the value given and the range it takes (a NaN says it is one)."""
    name = ".".join(str(p) for p in loc)
    field = GenerationOptions.model_fields.get(str(loc[0])) if loc else None
    bounds = {}
    for rule in field.metadata if field is not None else ():
        for key in ("ge", "gt", "le", "lt"):
            if getattr(rule, key, None) is not None:
                bounds[key] = getattr(rule, key)
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le", bounds.get("lt"))
    given = values.get(str(loc[0])) if loc else None
    shown = f" (got {given!r})" if isinstance(given, int | float | str) and len(repr(given)) < 40 else ""
    allowed = f": give a number from {low} to {high}" if low is not None and high is not None else ""
    return f"{name}: {message}{shown}{allowed}"
