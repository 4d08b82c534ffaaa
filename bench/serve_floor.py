"""The floor under bench/coldstart: Ray and Serve, started as `forge serve` starts them (its own local Ray,
HAProxy and direct ingress, one replica), serving an empty FastAPI route. What Ray itself costs before any
Forge code runs: `python -m bench.serve_floor PORT` answers POST /v1/predict until Ctrl-C.
"""

import sys
import time

from fastapi import FastAPI

from forge._runtime import init_ray


def main(port: int) -> None:
    ray = init_ray()  # forge serve's own start: Serve's defaults, then a local Ray
    from ray import serve

    api = FastAPI()

    @serve.deployment(name="floor", ray_actor_options={"num_cpus": 0})
    @serve.ingress(api)
    class Floor:
        @api.post("/v1/predict")
        def predict(self) -> dict:
            return {"predictions": []}

    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Floor.bind(), name="floor", route_prefix="/", blocking=False)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]))
