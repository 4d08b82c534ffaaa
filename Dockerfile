# Forge on the official Ray image (Ray and Python versions pinned to constraints.txt). The deploy workflow
# resolves this tag to its digest once and builds FROM the digest (RAY_IMAGE=rayproject/ray@sha256:...), so a tag
# moved upstream cannot change what a commit's image is built on; the digest is recorded as a label.
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-cpu
FROM ${RAY_IMAGE}
ARG RAY_IMAGE
LABEL org.opencontainers.image.base.name="${RAY_IMAGE}"

WORKDIR /home/ray/app
COPY --chown=ray:users constraints.txt pyproject.toml README.md ./
COPY --chown=ray:users forge ./forge
# torch is pinned to its CPU build (+cpu), which lives on the PyTorch CPU wheel index.
# psycopg: the MLflow server in kuberay/ runs from this image on PostgreSQL.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt . \
    "psycopg[binary]"
COPY --chown=ray:users jobs ./jobs
COPY --chown=ray:users serve_apps ./serve_apps
COPY --chown=ray:users examples ./examples
COPY --chown=ray:users kuberay/forge.prod.yaml ./kuberay/forge.prod.yaml

# No secrets in the image: the JWT public key, the model-signing keys, the Ray token, MLflow and S3 credentials come
# from Kubernetes Secrets; the workspace (s3://...) from the forge-config ConfigMap.
ENV FORGE_WORKSPACE=/home/ray/forge-workspace \
    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 \
    OMP_NUM_THREADS=1
# The Ray base image gives `ray` passwordless sudo (its base-deps Dockerfile appends `ray ALL=NOPASSWD: ALL` to
# /etc/sudoers). Nothing in Forge needs it; a compromised task must not get root from it.
USER root
RUN sed -i '/NOPASSWD/d' /etc/sudoers && rm -f /etc/sudoers.d/ray
USER ray
EXPOSE 8000 8265 8080
CMD ["forge", "--help"]
