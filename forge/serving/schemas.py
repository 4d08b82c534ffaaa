"""Request and response models generated from the training schema, so /docs shows real features."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from forge.config import ColumnSchema


def _number(kind: str):
    def check(v: Any) -> Any:
        # JSON has one number type: 40.0 is a fine int, but "40" and true are not numbers.
        if isinstance(v, (str, bool)):
            raise ValueError(f"expected a JSON number ({kind}), got {type(v).__name__}")
        if kind == "int" and isinstance(v, float) and v.is_integer():
            return int(v)
        return v

    return BeforeValidator(check)


def _one_of(allowed: list[str]):
    known = frozenset(allowed)

    def check(v: str) -> str:
        if v not in known:
            raise ValueError(f"unknown category {v!r}; allowed: {', '.join(sorted(known))}")
        return v

    return check


def _boolean(v: Any) -> Any:
    if v is not None and not isinstance(v, bool):
        raise ValueError("expected true or false")
    return v


_TYPES: dict[str, Any] = {
    "int": Annotated[int, _number("int")],
    "float": Annotated[float, _number("float")],
    "str": str,
    "bool": Annotated[bool, BeforeValidator(_boolean)],
    "datetime": str,
}


def instance_model(schema: dict[str, dict], name: str = "Instance", entity: str | None = None) -> type[BaseModel]:
    """A strict pydantic model of one row: unknown fields, wrong types and NaN/Infinity are errors.

    Args:
        entity: with online features on, this id column is required and every feature may be omitted
            (the app fills omitted ones from the feature store).
    """
    fields: dict[str, Any] = {}
    for col, spec in schema.items():
        py = _TYPES[spec["type"]]
        hard = ColumnSchema(**spec).hard_categories() if spec["type"] == "str" else None
        if hard is not None:  # only what a person wrote (allowed, or strict categories) is refused
            py = Annotated[str, AfterValidator(_one_of(hard))]
        desc = spec["type"] + (f", one of: {', '.join(hard)}" if hard is not None else "")
        kw: dict[str, Any] = {"description": desc}
        if spec["type"] in ("int", "float"):
            if spec.get("min") is not None:
                kw["ge"] = spec["min"]
            if spec.get("max") is not None:
                kw["le"] = spec["max"]
        if spec["type"] == "int":  # JSON ints are unbounded; the model, the log and Parquet hold 64 bits
            kw["ge"] = max(kw.get("ge", -(2**63)), -(2**63))
            kw["le"] = min(kw.get("le", 2**63 - 1), 2**63 - 1)
        default = None if entity else ...
        if spec.get("nullable", True):
            fields[col] = (Optional[py], Field(default, **kw))  # noqa: UP045  (create_model needs a runtime type)
        else:
            fields[col] = (py, Field(default, **kw))
    if entity and entity not in fields:
        fields[entity] = (int | str, Field(..., description="Entity id: omitted features come from the feature store"))
    config = ConfigDict(extra="forbid", allow_inf_nan=False)
    return create_model(name, __config__=config, **fields)


def request_model(instance: type[BaseModel], max_instances: int) -> type[BaseModel]:
    """The /v1/predict body; more than `max_instances` rows is answered 413 by the app."""
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        instances=(list[instance], Field(..., min_length=1, max_length=max_instances,
                                         description=f"Rows of raw features (1 to {max_instances}).")),
    )


class ModelRef(BaseModel):
    name: str
    version: str


class PredictResponse(BaseModel):
    predictions: list[Any]
    probabilities: list[list[float]] | None
    model: ModelRef
    variant: str
    request_id: str


def soft_categories(schema: dict[str, dict]) -> dict[str, frozenset]:
    """Columns with observed (not enforced) categories: a value outside them is served and counted."""
    out = {}
    for col, spec in schema.items():
        cs = ColumnSchema(**spec)
        if cs.type == "str" and cs.categories is not None and cs.hard_categories() is None:
            out[col] = frozenset(cs.categories)
    return out


def unknown_categories(frame, soft: dict[str, frozenset]) -> dict[str, int]:
    """How many values of each soft-category column are new (for forge_unknown_category_total)."""
    out = {}
    for col, known in soft.items():
        if col in frame.columns:
            values = frame[col]
            n = int((values.notna() & ~values.isin(known)).sum())
            if n:
                out[col] = n
    return out
