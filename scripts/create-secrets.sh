#!/usr/bin/env bash
# Create Forge's Kubernetes Secrets from environment variables, each only where it is used (split by role:
# kuberay/base/secrets.example.yaml). Nothing is written to disk.
#
#   NAMESPACE=forge-prod RAY_AUTH_TOKEN=... FORGE_JWT_PUBLIC_KEY_FILE=jwt.pub \
#   MLFLOW_BACKEND_STORE_URI=... MLFLOW_ARTIFACTS_DESTINATION=... MLFLOW_S3_ENDPOINT_URL=... \
#   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... SERVE_AWS_ACCESS_KEY_ID=... SERVE_AWS_SECRET_ACCESS_KEY=... \
#   MLFLOW_AUTH_DATABASE_URI=... MLFLOW_PASSWORD=... MLFLOW_READER_PASSWORD=... \
#   ALERT_WEBHOOK_ONCALL=https://... ALERT_WEBHOOK_TEAM=https://... scripts/create-secrets.sh
#
# Optional: MODEL_SIGNING_KEY_FILE (an Ed25519 private key, PEM; else one is made), REGISTRY_USER and
# REGISTRY_TOKEN (a pull secret for a private ghcr.io image).
#
# Server-side apply: `kubectl apply` of a plain Secret copies its data into the last-applied-configuration
# annotation, where anyone who may read the object's metadata sees it. Keys that must stay stable (the MLflow
# app's CSRF key, the model-signing key pair) are made once and kept on a rerun, never rotated by it.
set -euo pipefail
ns=${NAMESPACE:?set NAMESPACE}
: "${RAY_AUTH_TOKEN:?}" "${FORGE_JWT_PUBLIC_KEY_FILE:?}" "${MLFLOW_BACKEND_STORE_URI:?}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?}" "${MLFLOW_S3_ENDPOINT_URL:?}" "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}"
: "${SERVE_AWS_ACCESS_KEY_ID:?}" "${SERVE_AWS_SECRET_ACCESS_KEY:?}" "${MLFLOW_AUTH_DATABASE_URI:?}"
: "${MLFLOW_PASSWORD:?}" "${MLFLOW_READER_PASSWORD:?}" "${ALERT_WEBHOOK_ONCALL:?}" "${ALERT_WEBHOOK_TEAM:?}"
MLFLOW_USERNAME=${MLFLOW_USERNAME:-forge}
MLFLOW_READER_USERNAME=${MLFLOW_READER_USERNAME:-forge-serve}
for name in RAY_AUTH_TOKEN MLFLOW_PASSWORD MLFLOW_READER_PASSWORD; do
  if [ "$(printenv "$name" | wc -c)" -lt 33 ]; then
    echo "$name must be at least 32 random characters (openssl rand -hex 32)" >&2; exit 2
  fi
done
if grep -q "PRIVATE KEY" "$FORGE_JWT_PUBLIC_KEY_FILE"; then
  echo "FORGE_JWT_PUBLIC_KEY_FILE is a private key: give the public one (openssl pkey -in KEY -pubout)" >&2; exit 2
fi

apply() { kubectl -n "$ns" create secret generic "$@" --dry-run=client -o yaml \
  | kubectl -n "$ns" apply --server-side --field-manager=forge-secrets --force-conflicts -f -; }
existing() { kubectl -n "$ns" get secret "$1" -o "jsonpath={.data.$2}" 2>/dev/null | base64 -d 2>/dev/null || true; }

apply forge-ray-token --from-literal=auth_token="$RAY_AUTH_TOKEN"
apply forge-jwt-public --from-file=public.pem="$FORGE_JWT_PUBLIC_KEY_FILE"

# The model-signing key pair: the private key to the training side only, the public key to Serve.
signing=$(if [ -n "${MODEL_SIGNING_KEY_FILE:-}" ]; then cat "$MODEL_SIGNING_KEY_FILE"; else existing forge-model-signing 'model-signing\.key'; fi)
[ -n "$signing" ] || signing=$(openssl genpkey -algorithm ed25519)
public=$(printf '%s\n' "$signing" | openssl pkey -pubout)
apply forge-model-signing --from-literal=model-signing.key="$signing" --from-literal=model-signing.pub="$public"
apply forge-model-verify --from-literal=model-signing.pub="$public"

apply forge-secrets --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
apply forge-serve-s3 --from-literal=AWS_ACCESS_KEY_ID="$SERVE_AWS_ACCESS_KEY_ID" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$SERVE_AWS_SECRET_ACCESS_KEY"
apply forge-mlflow \
  --from-literal=backend-store-uri="$MLFLOW_BACKEND_STORE_URI" \
  --from-literal=artifacts-destination="$MLFLOW_ARTIFACTS_DESTINATION" \
  --from-literal=s3-endpoint-url="$MLFLOW_S3_ENDPOINT_URL" \
  --from-literal=aws-access-key-id="$AWS_ACCESS_KEY_ID" \
  --from-literal=aws-secret-access-key="$AWS_SECRET_ACCESS_KEY"
# MLflow's auth app: the server's admin (created on its first start), CSRF key (kept) and user database...
flask=$(existing forge-mlflow-auth 'flask-secret-key')
[ -n "$flask" ] || flask=$(openssl rand -hex 32)
ini=$(printf '[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = %s\nadmin_username = %s\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n' \
  "$MLFLOW_AUTH_DATABASE_URI" "$MLFLOW_USERNAME")
apply forge-mlflow-auth --from-literal=admin-username="$MLFLOW_USERNAME" \
  --from-literal=admin-password="$MLFLOW_PASSWORD" \
  --from-literal=flask-secret-key="$flask" \
  --from-literal=basic_auth.ini="$ini"
# ...the training side's user, and Serve's READ user (scripts/mlflow_reader.py creates it in MLflow).
apply forge-mlflow-client --from-literal=MLFLOW_TRACKING_USERNAME="$MLFLOW_USERNAME" \
  --from-literal=MLFLOW_TRACKING_PASSWORD="$MLFLOW_PASSWORD"
apply forge-mlflow-reader --from-literal=MLFLOW_TRACKING_USERNAME="$MLFLOW_READER_USERNAME" \
  --from-literal=MLFLOW_TRACKING_PASSWORD="$MLFLOW_READER_PASSWORD"
# Where Alertmanager delivers Forge's alerts, one URL per receiver of kuberay/base/alertmanager-config.yaml.
apply forge-alert-webhooks --from-literal=oncall="$ALERT_WEBHOOK_ONCALL" --from-literal=team="$ALERT_WEBHOOK_TEAM"
if [ -n "${REGISTRY_USER:-}" ] && [ -n "${REGISTRY_TOKEN:-}" ]; then
  kubectl -n "$ns" create secret docker-registry forge-registry --docker-server=ghcr.io \
    --docker-username="$REGISTRY_USER" --docker-password="$REGISTRY_TOKEN" --dry-run=client -o yaml \
    | kubectl -n "$ns" apply --server-side --field-manager=forge-secrets --force-conflicts -f -
fi
