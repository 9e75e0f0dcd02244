"""The reader: prompt building, generation with the full or Block-Attention backend, citations, streaming."""
from .answer import Answer, Citation
from .reader import ABSTAIN_TEXT, Reader

__all__ = ["ABSTAIN_TEXT", "Answer", "Citation", "Reader"]
