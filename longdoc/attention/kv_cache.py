"""The KV cache the reader decodes over: transformers' DynamicCache whose full-attention layers grow in place.

DynamicLayer appends by concatenation, so every decode step copies the whole cache of every layer: at 16K
tokens of context the default reader spent 28% of its answer copying its own cache on this CPU. A
GrowingLayer keeps spare room after its tokens and writes each step's keys and values into it, so a step
copies only its own rows; the room grows by a quarter when full (amortised: a copy every n/4 tokens).

`keys` and `values` are views of the filled part, as long as nobody replaces them. Code that assigns new
tensors (a re-encoding pass writes its keys back, transformers' crop) is honoured: the next update adopts
whatever is there into a fresh buffer."""
from __future__ import annotations

import functools

import torch

MIN_ROOM = 256  # tokens of spare room at least, so short answers never regrow


def room_for(n: int) -> int:
    """The tokens a buffer holding n has room for: a quarter more, at least MIN_ROOM more."""
    return n + max(MIN_ROOM, n // 4)


def filled_cache(config, keys: torch.Tensor, values: torch.Tensor, n: int):
    """A growing cache over buffers already filled: keys and values (layers, B, Hkv, room, D) hold n
    tokens. Plain layers take views of them (no copy: stitching a 64K context no longer holds it three
    times over); other layers are updated with the n tokens."""
    cache = growing_cache(config)
    layer_class = growing_layer()
    for layer in range(keys.shape[0]):
        if layer < len(cache.layers) and isinstance(cache.layers[layer], layer_class):
            cache.layers[layer].hold(keys[layer], values[layer], n)
        else:
            cache.update(keys[layer, ..., :n, :], values[layer, ..., :n, :], layer)
    return cache


def growing_cache(config):
    """A DynamicCache for `config` whose plain (full-attention) layers are GrowingLayers; sliding-window
    layers keep their own class."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    layer_class = growing_layer()
    cache = DynamicCache(config=config)
    cache.layers = [layer_class() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    if getattr(cache, "layer_class_to_replicate", None) is DynamicLayer:  # layers made on first use
        cache.layer_class_to_replicate = layer_class
    return cache


@functools.cache
def growing_layer() -> type:
    """The GrowingLayer class (made on first use: transformers is imported only when a reader runs)."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A DynamicLayer that appends into spare room instead of concatenating (module docstring)."""

        _buffers: tuple[torch.Tensor, torch.Tensor] | None = None

        def _initialize(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            if not self.is_initialized:
                try:
                    self.lazy_initialization(key_states, value_states)
                except TypeError:  # transformers releases whose lazy_initialization takes the keys alone
                    self.lazy_initialization(key_states)

        def hold(self, keys: torch.Tensor, values: torch.Tensor, n: int) -> None:
            """Take buffers (B, Hkv, room, D) whose first n tokens are this layer's cache, as they are."""
            self._initialize(keys[..., :0, :], values[..., :0, :])
            self._buffers = (keys, values)
            self.keys, self.values = keys[..., :n, :], values[..., :n, :]
            self._views = (self.keys, self.values)

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            self._initialize(key_states, value_states)
            n, add = self.get_seq_length(), key_states.shape[-2]
            held = self._buffers
            if held is None or self.keys is not self._views[0] or self.values is not self._views[1] \
                    or n + add > held[0].shape[-2] or held[0].shape[:-2] != key_states.shape[:-2]:
                held = self._buffers = self._adopt(n, add, key_states, value_states)
            held[0][..., n:n + add, :] = key_states
            held[1][..., n:n + add, :] = value_states
            self.keys, self.values = held[0][..., :n + add, :], held[1][..., :n + add, :]
            self._views = (self.keys, self.values)
            return self.keys, self.values

        def _adopt(self, n: int, add: int, key_states: torch.Tensor, value_states: torch.Tensor):
            """Fresh buffers with room for n + add tokens and a quarter more, holding the current n."""
            room = room_for(n + add)
            out = []
            for current, new in ((self.keys, key_states), (self.values, value_states)):
                buf = new.new_empty(*new.shape[:-2], room, new.shape[-1])
                if n:
                    buf[..., :n, :] = current
                out.append(buf)
            return tuple(out)

    return GrowingLayer
