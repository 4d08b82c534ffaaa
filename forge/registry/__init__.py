"""The registry: the `Registry` facade over MLflow (versions, aliases, hash-checked loads) and the
champion/challenger gate.
"""
