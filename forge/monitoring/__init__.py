"""Monitoring: the prediction log, drift, delayed labels, A/B statistics, metrics, job metrics and HTML reports."""
