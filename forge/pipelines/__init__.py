"""Pipelines: the stages composed end to end (run, train, retrain, batch prediction, schedules, demos)."""
