"""One MLflow pyfunc artifact: the fitted feature transform and the model together.

Loading it anywhere gives `predict(DataFrame of raw columns)`; the served app
and batch inference use `ForgeModel.predict_raw` for labels and probabilities.
"""

from __future__ import annotations

import hashlib
import json
import pickle  # nosec B403: ForgePyfunc unpickles the artifact MLflow's loader hands it, once its signature verifies
import tempfile
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pandas as pd

import forge
from forge.signing import SignatureError, Signer, digest, verifier

MODEL_FILE, SIGNATURE_FILE = "forge_model.pkl", "forge_model.sig.json"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ForgeModel:
    """Feature transform + estimator; what every serving path calls."""

    def __init__(self, transform, estimator, task: str, inputs: list[str], schema: dict):
        self.transform = transform
        self.estimator = estimator
        self.task = task
        self.inputs = inputs
        self.schema = schema  # raw column -> ColumnSchema dict, for request validation
        classes = getattr(estimator, "classes_", None)
        self.classes = [c.item() if hasattr(c, "item") else c for c in classes] \
            if task == "classification" and classes is not None else None

    def predict_raw(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """(predictions, probabilities or None) for raw rows.

        Raises:
            InputOutOfRange: a row whose features overflow once scaled (a finite 1e307 can): bad input, not a fault.
        """
        return self._predict_matrix(self.transform.transform_batch(df))

    def predict_rows(self, rows: list[dict]) -> tuple[np.ndarray, np.ndarray | None]:
        """`predict_raw` of `DataFrame.from_records(rows, columns=inputs)`, without the frame where the transform
        allows (a served request's rows, already validated)."""
        X = self.transform.transform_rows(rows)
        if X is None:
            X = self.transform.transform_batch(pd.DataFrame.from_records(rows, columns=self.inputs))
        return self._predict_matrix(X)

    def _predict_matrix(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        finite = np.isfinite(X).all(axis=1)
        if not finite.all():
            raise InputOutOfRange(np.flatnonzero(~finite).tolist())
        if self.task == "classification":
            proba = self.estimator.predict_proba(X)
            return np.asarray(self.classes)[proba.argmax(axis=1)], proba
        return self.estimator.predict(X), None

    def score_value(self, pred: np.ndarray, proba: np.ndarray | None) -> np.ndarray:
        """The number the score histogram records: positive-class probability or the prediction."""
        if proba is not None:
            return proba[:, -1] if proba.shape[1] == 2 else proba.max(axis=1)
        return np.asarray(pred, dtype="float64")


class InputOutOfRange(ValueError):
    """Rows (by position) whose values are too large for the model: their scaled features are not finite."""

    def __init__(self, rows: list[int]):
        super().__init__(f"rows {rows}: a value is too large for the model (its scaled features overflow)")
        self.rows = rows


class ForgePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        """MLflow's loader (`mlflow.pyfunc.load_model`): the artifact is unpickled only once its signature verifies
        with the public key in FORGE_VERIFY_KEY_FILE (this loader knows no workspace to find one in)."""
        data = Path(context.artifacts["forge_model"]).read_bytes()
        signed = context.artifacts.get("forge_signature")
        if not signed:
            raise SignatureError("the pyfunc's forge_model: unsigned; Forge loads only models its training side signed")
        claim = json.loads(Path(signed).read_text())
        sha256 = digest(data)
        if claim.get("sha256") != sha256:
            raise SignatureError("the pyfunc's forge_model: not the bytes that were signed; refusing to unpickle it")
        verifier(None).verify(str(claim.get("name")), sha256, claim.get("signature"), "the pyfunc's forge_model")
        self.model: ForgeModel = pickle.loads(data)  # nosec B301: its signature verified just above

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        pred, proba = self.model.predict_raw(model_input)
        out = pd.DataFrame({"prediction": pred})
        if proba is not None:
            for i, c in enumerate(self.model.classes):
                out[f"proba_{c}"] = proba[:, i]
        return out


def signature_of(model: ForgeModel, example: pd.DataFrame):
    from mlflow.models import infer_signature

    out = ForgePyfunc()
    out.model = model
    return infer_signature(example, out.predict(None, example))


def log_model(model: ForgeModel, example: pd.DataFrame, model_name: str, signer: Signer, name: str = "model",
              signature=None):
    """Log the pyfunc in the active run (with its MLflow signature and an input example), the pickled model signed
    by the training side's key for `model_name`. Returns (ModelInfo, SHA-256 of the pickled bytes, the signature):
    the registry records both, and every loader checks them before unpickling."""
    example = example[model.inputs].head(5)
    signature = signature or signature_of(model, example)
    data = cloudpickle.dumps(model)
    sha256 = digest(data)
    signed = signer.sign(model_name, sha256)
    with tempfile.TemporaryDirectory() as d:
        path, claim = Path(d) / MODEL_FILE, Path(d) / SIGNATURE_FILE
        path.write_bytes(data)
        claim.write_text(json.dumps({"name": model_name, "sha256": sha256, "signature": signed,
                                     "key": signer.verifier.key_id}))
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=ForgePyfunc(),
            artifacts={"forge_model": str(path), "forge_signature": str(claim)},
            signature=signature,
            input_example=example,
            code_paths=[str(Path(forge.__file__).parent)],
        )
        return info, sha256, signed
