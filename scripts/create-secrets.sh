#!/usr/bin/env bash
# Create Forge's Kubernetes Secrets from environment variables (nothing is written to disk).
# Usage: NAMESPACE=forge-prod FORGE_JWT_SECRET=... RAY_AUTH_TOKEN=... MLFLOW_BACKEND_STORE_URI=... \
#        MLFLOW_ARTIFACTS_DESTINATION=... MLFLOW_S3_ENDPOINT_URL=... AWS_ACCESS_KEY_ID=... \
#        AWS_SECRET_ACCESS_KEY=... MLFLOW_AUTH_DATABASE_URI=... MLFLOW_PASSWORD=... \
#        ALERT_WEBHOOK_ONCALL=https://... ALERT_WEBHOOK_TEAM=https://... scripts/create-secrets.sh
# Each Secret goes only where it is used (kuberay/base/secrets.example.yaml says where).
set -euo pipefail
ns=${NAMESPACE:?set NAMESPACE}
: "${FORGE_JWT_SECRET:?}" "${RAY_AUTH_TOKEN:?}" "${MLFLOW_BACKEND_STORE_URI:?}" "${MLFLOW_ARTIFACTS_DESTINATION:?}"
: "${MLFLOW_S3_ENDPOINT_URL:?}" "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}"
: "${MLFLOW_AUTH_DATABASE_URI:?}" "${MLFLOW_PASSWORD:?}" "${ALERT_WEBHOOK_ONCALL:?}" "${ALERT_WEBHOOK_TEAM:?}"
MLFLOW_USERNAME=${MLFLOW_USERNAME:-forge}
for name in FORGE_JWT_SECRET RAY_AUTH_TOKEN MLFLOW_PASSWORD; do
  if [ "${#name}" -gt 0 ] && [ "$(printenv "$name" | wc -c)" -lt 33 ]; then
    echo "$name must be at least 32 random characters (openssl rand -hex 32)" >&2; exit 2
  fi
done
apply() { kubectl -n "$ns" create secret generic "$@" --dry-run=client -o yaml | kubectl apply -f -; }
apply forge-jwt --from-literal=secret="$FORGE_JWT_SECRET"
apply forge-ray-token --from-literal=auth_token="$RAY_AUTH_TOKEN"
apply forge-secrets --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
apply forge-mlflow \
  --from-literal=backend-store-uri="$MLFLOW_BACKEND_STORE_URI" \
  --from-literal=artifacts-destination="$MLFLOW_ARTIFACTS_DESTINATION" \
  --from-literal=s3-endpoint-url="$MLFLOW_S3_ENDPOINT_URL" \
  --from-literal=aws-access-key-id="$AWS_ACCESS_KEY_ID" \
  --from-literal=aws-secret-access-key="$AWS_SECRET_ACCESS_KEY"
# MLflow's auth app: the server's admin (created on its first start), CSRF key and user database...
ini=$(printf '[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = %s\nadmin_username = %s\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n' \
  "$MLFLOW_AUTH_DATABASE_URI" "$MLFLOW_USERNAME")
apply forge-mlflow-auth --from-literal=admin-username="$MLFLOW_USERNAME" \
  --from-literal=admin-password="$MLFLOW_PASSWORD" \
  --from-literal=flask-secret-key="$(openssl rand -hex 32)" \
  --from-literal=basic_auth.ini="$ini"
# ...and the user Forge's Ray pods call it as (the variables MLflow's client reads).
apply forge-mlflow-client --from-literal=MLFLOW_TRACKING_USERNAME="$MLFLOW_USERNAME" \
  --from-literal=MLFLOW_TRACKING_PASSWORD="$MLFLOW_PASSWORD"
# Where Alertmanager delivers Forge's alerts, one URL per receiver of kuberay/base/alertmanager-config.yaml.
apply forge-alert-webhooks --from-literal=oncall="$ALERT_WEBHOOK_ONCALL" --from-literal=team="$ALERT_WEBHOOK_TEAM"
