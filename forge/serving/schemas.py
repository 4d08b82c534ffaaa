"""Request and response models generated from the training schema, so /docs shows real features."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, Optional, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    create_model,
    with_config,
)
from typing_extensions import TypedDict  # pydantic refuses typing's TypedDict before Python 3.12

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
    # Strict: a JSON number (an int too) and nothing else, checked in pydantic-core; the Python check a float
    # field had cost a call per value (0.43 -> 0.23 ms to parse and check a 100-row x 20 request).
    "float": Annotated[float, Strict()],
    "str": str,
    "bool": Annotated[bool, BeforeValidator(_boolean)],
    "datetime": str,
}


def instance_model(schema: dict[str, dict], name: str = "Instance", entity: str | None = None,
                   max_string_length: int = 256) -> type[BaseModel]:
    """A strict pydantic model of one row: unknown fields, wrong types, NaN/Infinity and over-long strings are
    errors (a multi-MB string would otherwise be copied into the log, Parquet and the drift window).

    Args:
        entity: with online features on, this id column is required and every feature may be omitted
            (the app fills omitted ones from the feature store).
    """
    fields: dict[str, Any] = {}
    for col, spec in schema.items():
        py = _TYPES[spec["type"]]
        if py is str:
            py = Annotated[str, Field(max_length=max_string_length)]
        hard = ColumnSchema(**spec).hard_categories() if spec["type"] == "str" else None
        if hard is not None:  # only what a person wrote (allowed, or strict categories) is refused
            py = Annotated[str, Field(max_length=max_string_length), AfterValidator(_one_of(hard))]
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
        fields[entity] = (int | Annotated[str, Field(max_length=max_string_length)],
                          Field(..., description="Entity id: omitted features come from the feature store"))
    config = ConfigDict(extra="forbid", allow_inf_nan=False)
    return create_model(name, __config__=config, **fields)


def served_instance_model(cfg, schema: dict[str, dict]) -> type[BaseModel]:
    """One row of this app's requests: the champion's schema, with the entity id when online features are on.
    The app's request model and a replica's late check (an app built before any champion) both use it."""
    entity = cfg.data.entity if cfg.features.online.enabled else None
    return instance_model(schema, entity=entity, max_string_length=cfg.serving.max_string_length)


def any_instance(max_string_length: int = 256) -> Any:
    """A row before any champion exists: named JSON scalars (bounded strings). The replica checks it against the
    champion's schema once one is loaded (`ForgeReplica.typed_instances`)."""
    scalar = Optional[bool | int | float | Annotated[str, Field(max_length=max_string_length)]]  # noqa: UP045
    return dict[Annotated[str, Field(max_length=128)], scalar]


def request_model(instance: type[BaseModel], max_instances: int) -> type[BaseModel]:
    """The /v1/predict body; more than `max_instances` rows is answered 413 by the app."""
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        instances=(list[instance], Field(..., min_length=1, max_length=max_instances,
                                         description=f"Rows of raw features (1 to {max_instances}).")),
    )


def as_dicts(model: Any) -> TypeAdapter:
    """`model`'s validation (a model, or a list of one) into plain dicts: the same fields, constraints, validators
    and config, as TypedDicts (nested models too), so a request's rows need no model objects and no `model_dump`.
    Validating a 100-row x 24 request took 0.38 ms this way against 0.32 ms + 0.14 ms to dump (bench/serve's
    model, measured).

    A field with a default is left out of the dict when the caller left it out, as `model_dump(exclude_unset=True)`
    gives. Errors keep their locations and messages; a value that is not an object reads "dict_type" where the
    model said "model_type" (both "Input should be an object").
    """
    return TypeAdapter(_dicts_of(model))


def _typed_dict(model: type[BaseModel]) -> Any:
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        meta = (*info.metadata, Field(description=info.description))
        annotation = Annotated[(_dicts_of(info.annotation), *meta)]  # type: ignore[valid-type]
        fields[name] = annotation if info.is_required() else NotRequired[annotation]
    config = {k: model.model_config[k] for k in ("extra", "allow_inf_nan") if k in model.model_config}
    return with_config(ConfigDict(**config))(TypedDict(model.__name__, fields))  # type: ignore[operator]


def _dicts_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _typed_dict(annotation)
    if get_origin(annotation) is list:
        return list[_dicts_of(get_args(annotation)[0])]  # type: ignore[misc]
    return annotation


class Label(BaseModel):
    """Ground truth for one served row, joined on the id the server returned with the prediction."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="The `request_id` of the response.")
    row: int = Field(0, ge=0, le=1_000_000, description="Position of the row in that request.")
    label: bool | int | float | Annotated[str, Field(max_length=256)] = Field(description="The true value.")


def _one_kind(labels: list[Label]) -> list[Label]:
    """One request's labels share a kind (booleans, numbers or text): a column of mixed kinds has no Parquet type
    (schemathesis found the 500 it gave)."""
    kinds = {"bool" if isinstance(x.label, bool) else "number" if isinstance(x.label, int | float) else "str"
             for x in labels}
    if len(kinds) > 1:
        raise ValueError(f"labels mix {' and '.join(sorted(kinds))}: send one kind per request")
    return labels


def labels_model(max_labels: int) -> type[BaseModel]:
    """The /v1/labels body."""
    return create_model("LabelsRequest", __config__=ConfigDict(extra="forbid"),
                        labels=(Annotated[list[Label], AfterValidator(_one_kind)],
                                Field(..., min_length=1, max_length=max_labels)))


class InferInput(BaseModel):
    """One input tensor of the Open Inference Protocol: a named column."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=128)
    shape: list[int] = Field(max_length=2)
    datatype: str = Field(max_length=16)
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """The Open Inference Protocol (v2) request body: one column per input, all of one length."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$")
    inputs: list[InferInput] = Field(min_length=1, max_length=512)
    parameters: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] | None = None

    def rows(self) -> list[dict]:
        """Columns -> rows. Raises ValueError for columns of unequal length or duplicate names."""
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError("inputs: duplicate input names")
        lengths = {len(i.data) for i in self.inputs}
        if len(lengths) != 1:
            raise ValueError(f"inputs: every input needs the same number of values (got {sorted(lengths)})")
        n = lengths.pop()
        return [{i.name: i.data[r] for i in self.inputs} for r in range(n)]


class Alert(BaseModel):
    """One alert of Alertmanager's webhook payload (the fields Forge reads; others are ignored)."""

    model_config = ConfigDict(extra="ignore")
    status: Literal["firing", "resolved"]
    labels: dict[Annotated[str, Field(max_length=128)], Annotated[str, Field(max_length=1024)]] = Field(max_length=64)
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] = Field(default_factory=dict, max_length=64)
    fingerprint: str | None = Field(None, max_length=64)


class AlertWebhook(BaseModel):
    """Alertmanager's webhook body (version 4): one notification of one alert group."""

    model_config = ConfigDict(extra="ignore")
    version: str = Field(max_length=8)
    groupKey: str = Field(max_length=1024)  # noqa: N815 (Alertmanager's field name)
    status: Literal["firing", "resolved"]
    receiver: str = Field(max_length=256)
    alerts: list[Alert] = Field(min_length=1, max_length=1000)


class ModelRef(BaseModel):
    name: str
    version: str


class PredictResponse(BaseModel):
    predictions: list[Any]
    probabilities: list[list[float]] | None
    model: ModelRef
    variant: str
    request_id: str = Field(description="The server's id of this request: delayed labels join on it.")
    client_request_id: str | None = Field(None, description="The caller's x-request-id, when it sent one.")


def soft_categories(schema: dict[str, dict]) -> dict[str, frozenset]:
    """Columns with observed (not enforced) categories: a value outside them is served and counted."""
    out = {}
    for col, spec in schema.items():
        cs = ColumnSchema(**spec)
        if cs.type == "str" and cs.categories is not None and cs.hard_categories() is None:
            out[col] = frozenset(cs.categories)
    return out


def unknown_in_rows(rows: list[dict], soft: dict[str, frozenset]) -> dict[str, int]:
    """How many values of each soft-category column of a request's JSON rows are new (for
    forge_unknown_category_total); a JSON null is missing, not new."""
    out = {}
    for col, known in soft.items():
        n = sum(1 for r in rows if (v := r.get(col)) is not None and v not in known)
        if n:
            out[col] = n
    return out
