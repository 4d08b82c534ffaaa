"""Serving: the Ray Serve app (FastAPI ingress), its replica parts (router, predictor, shadow, live monitor),
auth and limits.
"""
