"""Offline-first model resolution: packaged defaults, Hugging Face ids, local dirs and GGUF files."""
from .registry import KNOWN_MODELS, ModelInfo, list_models, pull_model
from .embedders import load_embedder_model
from .readers import reader_path, load_reader

__all__ = ["KNOWN_MODELS", "ModelInfo", "list_models", "pull_model", "load_embedder_model", "reader_path", "load_reader"]
