"""The baseline for bench/serve: the same ForgeModel behind bare FastAPI + uvicorn (no Ray, no auth, no log)."""

import os

import pandas as pd
from fastapi import FastAPI

from forge.training.packaging import load_forge_model

app = FastAPI()
_model = None


def model():
    global _model
    if _model is None:
        import mlflow

        mlflow.set_tracking_uri(os.environ["BENCH_TRACKING_URI"])
        _model = load_forge_model(os.environ["BENCH_MODEL_URI"])
    return _model


@app.post("/v1/predict")
def predict(body: dict) -> dict:
    m = model()
    pred, proba = m.predict_raw(pd.DataFrame.from_records(body["instances"], columns=m.inputs))
    return {"predictions": pred.tolist(), "probabilities": None if proba is None else proba.tolist()}
