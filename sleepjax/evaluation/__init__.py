"""Metrics, linear probes, reports and plots."""
