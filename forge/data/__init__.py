"""Data: reading sources (CSV, Parquet, JSON, SQL), schema inference, row validation with quarantine, dataset
checks and content-addressed versions.
"""
