"""Create the MLflow user the Serve pods call MLflow as, with READ on the project's experiment and registered model
only: a compromised Serve pod can then load and describe models, never register, tag or promote one.

    MLFLOW_TRACKING_USERNAME=<admin> MLFLOW_TRACKING_PASSWORD=<admin password> \\
    MLFLOW_READER_PASSWORD=<the forge-mlflow-reader Secret's> \\
        python scripts/mlflow_reader.py --tracking-uri http://forge-mlflow:5000 --model churn [--user forge-serve]

Run it once as MLflow's admin (kubectl port-forward svc/forge-mlflow 5000 works). The experiment and the
registered model are created empty when they do not exist yet, so the grant can be made before the first training.
Rerunning it is fine: an existing user keeps its password unless --reset-password.
"""

from __future__ import annotations

import argparse
import os


def grant_read(tracking_uri: str, model: str, user: str, password: str, reset_password: bool = False) -> dict:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException, RestException
    from mlflow.server.auth.client import AuthServiceClient

    admin = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = admin.get_experiment_by_name(model)
    experiment_id = experiment.experiment_id if experiment else admin.create_experiment(model)
    try:
        admin.get_registered_model(model)
    except MlflowException:
        admin.create_registered_model(model)
    auth = AuthServiceClient(tracking_uri)
    try:
        auth.create_user(user, password)
    except RestException:  # the user exists
        if reset_password:
            auth.update_user_password(user, password)
    _set_read(auth, user, "experiment", experiment_id)
    _set_read(auth, user, "registered_model", model)
    return {"user": user, "experiment_id": experiment_id, "registered_model": model, "permission": "READ"}


def _set_read(auth, user: str, kind: str, resource: str) -> None:
    """READ, and only READ, on a rerun too: a permission raised by hand since is put back."""
    from mlflow.exceptions import RestException

    try:
        auth.grant_user_permission(user, kind, resource, "READ")
    except RestException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(user, kind, resource)
        auth.grant_user_permission(user, kind, resource, "READ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--model", required=True, help="the project's name: its experiment and registered model")
    parser.add_argument("--user", default="forge-serve")
    parser.add_argument("--reset-password", action="store_true")
    args = parser.parse_args()
    password = os.environ.get("MLFLOW_READER_PASSWORD")
    if not password:
        raise SystemExit("set MLFLOW_READER_PASSWORD (the forge-mlflow-reader Secret's password)")
    print(grant_read(args.tracking_uri, args.model, args.user, password, args.reset_password))


if __name__ == "__main__":
    main()
