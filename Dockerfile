# Forge on the official Ray image (Ray and Python versions pinned to constraints.txt).
FROM rayproject/ray:2.60.0-py311-cpu

WORKDIR /home/ray/app
COPY --chown=ray:users constraints.txt pyproject.toml README.md ./
COPY --chown=ray:users forge ./forge
# torch is pinned to its CPU build (+cpu), which lives on the PyTorch CPU wheel index.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt .
COPY --chown=ray:users jobs ./jobs
COPY --chown=ray:users serve_apps ./serve_apps
COPY --chown=ray:users examples ./examples

# No secrets in the image: FORGE_JWT_SECRET, MLflow and S3 credentials come from Kubernetes Secrets.
ENV FORGE_WORKSPACE=/home/ray/forge-workspace \
    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 \
    OMP_NUM_THREADS=1
USER ray
EXPOSE 8000 8265 8080
CMD ["forge", "--help"]
