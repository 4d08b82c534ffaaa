"""The baseline for bench/serve: the same ForgeModel behind bare FastAPI + uvicorn (no Ray, no auth, no log).

The model loads when a worker imports this module, so no worker starts answering before it can predict
(a lazy load landed inside the first measurement and halved its figure).
"""

import os

import pandas as pd
from fastapi import FastAPI

from forge.registry.client import Registry

MODEL = Registry(os.environ["BENCH_MODEL_NAME"], os.environ["BENCH_TRACKING_URI"]).load(os.environ["BENCH_MODEL_VERSION"])
app = FastAPI()


@app.post("/v1/predict")
def predict(body: dict) -> dict:
    pred, proba = MODEL.predict_raw(pd.DataFrame.from_records(body["instances"], columns=MODEL.inputs))
    return {"predictions": pred.tolist(), "probabilities": None if proba is None else proba.tolist()}
