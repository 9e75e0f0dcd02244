"""Scale-out on Ray (the `distributed` extra): indexing and evaluation spread over a Ray cluster,
with this process as the one writer, so results equal the single-process path."""
