#!/usr/bin/env bash
# Create Forge's Kubernetes Secrets from environment variables (nothing is written to disk).
# Usage: NAMESPACE=forge-prod FORGE_JWT_SECRET=... MLFLOW_BACKEND_STORE_URI=... MLFLOW_ARTIFACTS_DESTINATION=... \
#        MLFLOW_S3_ENDPOINT_URL=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... scripts/create-secrets.sh
set -euo pipefail
ns=${NAMESPACE:?set NAMESPACE}
: "${FORGE_JWT_SECRET:?}" "${MLFLOW_BACKEND_STORE_URI:?}" "${MLFLOW_ARTIFACTS_DESTINATION:?}"
: "${MLFLOW_S3_ENDPOINT_URL:?}" "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}"
if [ "${#FORGE_JWT_SECRET}" -lt 32 ]; then echo "FORGE_JWT_SECRET must be at least 32 characters" >&2; exit 2; fi
kubectl -n "$ns" create secret generic forge-secrets \
  --from-literal=FORGE_JWT_SECRET="$FORGE_JWT_SECRET" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$ns" create secret generic forge-mlflow \
  --from-literal=backend-store-uri="$MLFLOW_BACKEND_STORE_URI" \
  --from-literal=artifacts-destination="$MLFLOW_ARTIFACTS_DESTINATION" \
  --from-literal=s3-endpoint-url="$MLFLOW_S3_ENDPOINT_URL" \
  --from-literal=aws-access-key-id="$AWS_ACCESS_KEY_ID" \
  --from-literal=aws-secret-access-key="$AWS_SECRET_ACCESS_KEY" --dry-run=client -o yaml | kubectl apply -f -
