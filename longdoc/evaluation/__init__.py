"""Evaluation: corpora and datasets fetched from package registries, metrics, runners."""
