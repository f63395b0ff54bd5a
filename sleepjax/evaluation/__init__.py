"""Metrics, evaluators (probe, retrieval, classification, channel ablation), tables and plots."""
