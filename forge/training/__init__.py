"""Training: model families, the Ray Tune search (Ray Train for the MLP), evaluation, packaging and MLflow tracking."""
