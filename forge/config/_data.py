"""Config sections of the data and training stages: data, features, training, registry."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from forge.config._base import ColumnType, _Strict


class ColumnSchema(_Strict):
    type: ColumnType = Field(description="Logical type the column is parsed as.")
    nullable: bool = Field(True, description="Whether null values are allowed.")
    min: float | None = Field(None, description="Smallest allowed value (numeric columns).")
    max: float | None = Field(None, description="Largest allowed value (numeric columns).")
    allowed: list[str] | None = Field(
        None, description="Allowed categories (string columns): a hard rule, written by a person. Other values are "
                          "quarantined and refused with 422.")
    categories: list[str] | None = Field(
        None, description="Observed categories (what `forge init` saw): a profile, not a rule. A new category is "
                          "counted, reported and drifts; it is quarantined or refused only when strict is true.")
    strict: bool = Field(False, description="Make the observed categories a hard rule, like allowed.")

    def hard_categories(self) -> list[str] | None:
        """The categories a value must be one of, or None when any value goes."""
        if self.allowed is not None:
            return self.allowed
        return self.categories if self.strict else None


class DataChecks(_Strict):
    min_rows: int = Field(10, description="Fewest valid rows a dataset may have.")
    max_null_fraction: float = Field(0.5, description="Largest null fraction allowed in any column.")
    max_duplicate_rate: float = Field(0.5, description="Largest share of exact duplicate rows.")
    max_quarantined_fraction: float = Field(
        0.01, ge=0, le=1, description="Stop the run (exit 1, nothing downstream) when more than this share of the "
                                      "rows is quarantined: a dataset that lost that much is not the data you meant.")


class SplitConfig(_Strict):
    method: Literal["random", "time"] | None = Field(
        None, description="random (stratified for classification) or time; default: time when data.timestamp is set."
    )
    val_size: float = Field(0.15, description="Share of rows for validation during the search.")
    test_size: float = Field(0.2, description="Share of rows held out for evaluation and the gate.")


class DataConfig(_Strict):
    source: str = Field(description="File, folder, glob, URI (s3://, gs://, file://) or sqlite:///db for SQL.")
    target: str = Field(description="Column to predict.")
    format: Literal["csv", "parquet", "json", "sql"] | None = Field(
        None, description="Input format; inferred from the source's suffix when absent."
    )
    query: str | None = Field(None, description="SQL query, when format is sql.")
    timestamp: str | None = Field(None, description="Event-time column; enables time-based splits.")
    entity: str | None = Field(None, description="Entity id column, for the feature store.")
    schema_: dict[str, ColumnSchema] | None = Field(
        None, alias="schema", description="Declared schema; inferred from the data when absent."
    )
    checks: DataChecks = Field(default_factory=DataChecks, description="Dataset-level checks.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train/validation/test split.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="Options for the object-store filesystem (endpoint_override, ...)."
    )
    in_process_bytes: int = Field(
        256 << 20, ge=0, description="A CSV source of at most this many bytes is profiled and validated in the "
                                     "calling process (the same code the Ray Data tasks run): below it, starting "
                                     "tasks costs more than the work (500k rows x 20, 157 MB: 2.4 s here against "
                                     "4.9 s on Ray Data). 0: always Ray Data.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class OnlineFeaturesConfig(_Strict):
    enabled: bool = Field(
        False, description="Requests may carry only data.entity: features they omit come from the online store."
    )
    table: str | None = Field(
        None, description="Feature table to read (reloaded on each registry poll when rewritten); default: model name."
    )


class FeaturesConfig(_Strict):
    numeric: list[str] | None = Field(None, description="Numeric features; inferred from the schema when absent.")
    categorical: list[str] | None = Field(None, description="Categorical features; inferred when absent.")
    drop: list[str] = Field(default_factory=list, description="Columns never used as features.")
    keep: list[str] = Field(
        default_factory=list, description="Columns used as features even when validation finds them constant or "
                                          "ID-like (such columns are left out otherwise).")
    derived: dict[str, str] = Field(
        default_factory=dict, description="New numeric columns as pandas expressions over columns, e.g. 'a / b'."
    )
    store: bool = Field(
        True, description="Write each trained data version's raw features to the offline store "
                          "(needs data.entity and data.timestamp)."
    )
    online: OnlineFeaturesConfig = Field(default_factory=OnlineFeaturesConfig,
                                         description="Serving-time lookup of features by entity id.")
    lookup_in_process_rows: int = Field(
        20_000_000, ge=0, description="Point-in-time lookups against a feature table of at most this many rows "
                                      "run as one as-of join in the calling process; larger tables join bucket "
                                      "by bucket as Ray tasks, so no process holds the whole table.")


class TrainingConfig(_Strict):
    task: Literal["classification", "regression"] | None = Field(None, description="Inferred from the target.")
    metric: str | None = Field(None, description="roc_auc (binary), f1_macro (multiclass), rmse (regression).")
    models: list[str] | dict[str, dict[str, Any]] | None = Field(
        None, description="Model families, or families with search-space overrides."
    )
    num_samples: int = Field(8, description="Trials in the search.")
    max_concurrent: int = Field(2, description="Trials run at once.")
    trial_cpus: float = Field(
        1.0, gt=0, description="CPUs a trial reserves (for an MLP trial, its TorchTrainer worker); below 1, "
                               "trials share CPUs (a small machine that also serves)."
    )
    max_failures: int = Field(
        2, ge=0, description="Times a trial is retried after its worker or node dies (Tune's FailureConfig).")
    scheduler: Literal["asha", "none"] = Field("asha", description="Early stopping for iterative families.")
    search_alg: Literal["optuna", "random"] = Field("optuna", description="Search algorithm.")
    max_epochs: int = Field(20, description="Epochs of the MLP family (ASHA's max_t).")
    seed: int = Field(42, description="Seed for splits and search.")
    test_size: float | None = Field(None, description="Deprecated alias of data.split.test_size.")
    slice_column: str | None = Field(None, description="Categorical column for per-slice metrics.")
    use_gpu: bool | None = Field(None, description="Train the MLP on GPUs; default: when the cluster has any.")


class GateConfig(_Strict):
    metric: str | None = Field(None, description="Gate metric; default: training.metric.")
    min: float | None = Field(None, description="Absolute floor the challenger must reach.")
    min_improvement: float = Field(0.0, description="How much the challenger must beat the champion by.")


class RegistryConfig(_Strict):
    gate: GateConfig = Field(default_factory=GateConfig, description="Champion/challenger gate.")
