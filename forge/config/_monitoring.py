"""Config sections of monitoring and retraining: drift, the prediction log, alerts, retraining triggers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from forge.config._base import _Strict


class DriftConfig(_Strict):
    drift_share: float = Field(0.5, description="Dataset drift when this share of features drifts.")
    small_reference_rows: int = Field(1000, description="At or below: KS / chi-square; above: distances.")
    p_value: float = Field(0.05, description="Significance of KS and chi-square.")
    wasserstein_threshold: float = Field(0.1, description="Normalized Wasserstein threshold.")
    jensenshannon_threshold: float = Field(0.1, description="Jensen-Shannon distance threshold.")
    psi_threshold: float = Field(0.2, description="PSI threshold, when method psi is chosen.")
    method: Literal["auto", "psi"] = Field("auto", description="auto (Evidently's rule) or psi for all.")
    reference_rows: int = Field(5000, description="Rows kept as the drift reference sample.")
    window_rows: int = Field(1000, description="Prediction-log window, in rows.")
    engine: Literal["auto", "binned", "exact", "pandas", "ray"] = Field(
        "auto", description="How `forge drift --current FILE` tests the file: binned (one streamed pass binned on the "
                            "reference's training-time quantiles: Arrow in this process for local files, Ray Data "
                            "for URIs), exact (scipy on the whole file in memory; `pandas` is its old name), ray "
                            "(binned through Ray Data), or auto (binned when the model has bins and a reference "
                            "above small_reference_rows, else exact)."
    )
    ray_min_mb: float = Field(64, description="auto engine: local current data of this size or more goes to Ray Data.")
    window_s: float | None = Field(
        None, description="Prediction-log window by time: the records of the last this many seconds. When set, "
                          "it applies instead of window_rows (`forge drift --since` overrides it)."
    )
    live_interval_s: float = Field(
        30, description="Replicas recompute the live-window drift gauges at most this often (CPU off the request path)."
    )


class PredictionLogConfig(_Strict):
    path: str | None = Field(None, description="Where the log lives; default: workspace predictions/.")
    flush_rows: int = Field(5000, description="Flush after this many records (or every flush_interval_s).")
    flush_interval_s: float = Field(2.0, description="Flush at least this often.")


class AlertTriggerConfig(_Strict):
    alertnames: list[str] = Field(
        default_factory=lambda: ["ForgeFeatureDrift", "ForgeDriftShareHigh"],
        description="Firing alerts (POST /v1/alerts, Alertmanager's webhook) that start a retraining check "
                    "(--if-drift --if-decay) as a Ray job.")
    dedup_window_s: float = Field(
        3600, gt=0, description="At most one retraining check per Alertmanager group key in any span of this many "
                                "seconds (the Ray job's submission id carries the key and the window).")
    job_address: str | None = Field(
        None, description="Ray Jobs API the check is submitted to (e.g. http://forge-head-svc:8265 on KubeRay: "
                          "the training cluster); default: the cluster the app runs on.")


class StackConfig(_Strict):
    """Ports of the local stack `forge up` starts (each checked free before anything starts)."""

    ray_port: int = Field(6379, description="The Ray head's GCS port.")
    dashboard_port: int = Field(8265, description="The Ray dashboard (and Jobs API).")
    mlflow_port: int = Field(5000, description="The MLflow UI / tracking server on the workspace's store.")
    prometheus_port: int = Field(9090, description="Prometheus (Forge's rules loaded, alerts to Alertmanager).")
    alertmanager_port: int = Field(9093, description="Alertmanager (alertmanager/alertmanager.yml's routing).")
    pushgateway_port: int = Field(9091, description="The Pushgateway batch jobs push to.")


class MonitoringConfig(_Strict):
    drift: DriftConfig = Field(default_factory=DriftConfig, description="Drift detection.")
    prediction_log: PredictionLogConfig = Field(default_factory=PredictionLogConfig, description="Prediction log.")
    pushgateway: str | None = Field(
        None, description="Prometheus Pushgateway URL (e.g. http://pushgateway:9091): batch jobs (validate, train, "
                          "run, retrain, drift, batch) push their run and process metrics there when they end."
    )
    stack: StackConfig = Field(default_factory=StackConfig, description="The local stack of `forge up`.")
    alerts: AlertTriggerConfig = Field(default_factory=AlertTriggerConfig,
                                       description="Alertmanager's webhook (POST /v1/alerts): which alerts start a "
                                                   "retraining check, how often, and where.")


class RetrainingConfig(_Strict):
    triggers: list[Literal["drift", "schedule", "performance", "manual"]] = Field(
        default_factory=lambda: ["drift", "manual"], description="What may start a retraining."
    )
    schedule: str = Field(
        "0 3 * * *", description="Cron schedule (UTC) for scheduled retraining: the CronJob in kuberay/ and "
                                 "`forge retrain --schedule` locally."
    )
    include_labelled: bool = Field(True, description="Add labelled recent data to the training set.")
    performance_drop: float = Field(
        0.05, description="Performance trigger: retrain when the live metric is this much worse than at test time."
    )
    performance_window: int = Field(500, description="Newest labelled predictions the live metric is computed on.")
    window_rows: int | None = Field(
        None, description="Train on at most this many rows, newest first (original + labelled); None keeps all."
    )
    split_method: Literal["random", "time"] = Field(
        "random", description="How a retraining splits its rows. random: the newest labelled rows must be learnt "
                              "from; the gate's holdout (never trained on) keeps the judgement honest."
    )
    gate_holdout: float = Field(
        0.3, description="Share of the newest labelled rows kept out of training: the gate judges both models on them."
    )
    min_labelled: int = Field(50, description="Labelled predictions needed before the live metric counts.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        from forge._cron import cron_trigger

        cron_trigger(v)  # raises ValueError naming the bad field
        return v
