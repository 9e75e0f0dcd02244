"""The reader: prompt building, generation with the full, Block-Attention or long-context (scan, landmark, retrieval) backend, citations, streaming."""
from .answer import Answer, Citation
from .reader import ABSTAIN_TEXT, Reader
from .read import read

__all__ = ["ABSTAIN_TEXT", "Answer", "Citation", "Reader", "read"]
