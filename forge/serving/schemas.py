"""Request and response models generated from the training schema, so /docs shows real features."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool, "datetime": str}


def instance_model(schema: dict[str, dict], name: str = "Instance") -> type[BaseModel]:
    """A strict pydantic model of one row: unknown fields, wrong types and NaN/Infinity are errors."""
    fields: dict[str, Any] = {}
    for col, spec in schema.items():
        py = _TYPES[spec["type"]]
        desc = spec["type"] + (f", allowed: {', '.join(spec['allowed'])}" if spec.get("allowed") else "")
        kw: dict[str, Any] = {"description": desc}
        if spec["type"] in ("int", "float"):
            if spec.get("min") is not None:
                kw["ge"] = spec["min"]
            if spec.get("max") is not None:
                kw["le"] = spec["max"]
        if spec.get("nullable", True):
            fields[col] = (Optional[py], Field(..., **kw))  # noqa: UP045  (create_model needs a runtime type)
        else:
            fields[col] = (py, Field(..., **kw))
    # strict: "3" is not an int and 1 is not a bool; an int is still a valid float.
    config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
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
