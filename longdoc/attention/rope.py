"""RoPE re-rotation of cached keys: undo the rotation at the positions a chunk was encoded at and apply it
at the positions the chunk takes in the stitched context. Values carry no position and are untouched.

Works for any model whose rotary module maps positions to (cos, sin) and rotates pairs by `rotate_half`
(Llama, Qwen2, Mistral, ...; default, linear, llama3 and yarn scaling). A scaled rotary multiplies cos and
sin by `attention_scaling`; it is divided out so only the pure rotation is undone."""
from __future__ import annotations

import torch

from ..errors import ModelError


def rotary_module(model):
    rotary = getattr(getattr(model, "model", model), "rotary_emb", None)
    if rotary is None:
        raise ModelError(f"{type(model).__name__} has no rotary embedding at model.rotary_emb; "
                         "Block-Attention supports RoPE models of the Llama and Qwen2 families")
    if getattr(model.config, "partial_rotary_factor", 1.0) not in (None, 1.0):
        raise ModelError(f"{type(model).__name__} rotates only part of each head; Block-Attention needs full RoPE")
    return rotary


def rotary_cos_sin(model, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each (L, head_dim) float32, for integer positions (L,), without attention scaling."""
    rotary = rotary_module(model)
    x = torch.ones(1, dtype=torch.float32, device=positions.device)
    cos, sin = rotary(x, positions.view(1, -1))
    scale = float(getattr(rotary, "attention_scaling", 1.0) or 1.0)
    return cos[0].float() / scale, sin[0].float() / scale


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rerotate_keys(keys: torch.Tensor, src: tuple[torch.Tensor, torch.Tensor],
                  dst: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """keys (..., L, D) rotated at the positions of `src` = (cos, sin) -> rotated at those of `dst`."""
    k = keys.float()
    raw = k * src[0] - rotate_half(k) * src[1]  # rotation by -theta undoes rotation by theta
    return (raw * dst[0] + rotate_half(raw) * dst[1]).to(keys.dtype)


def shift_keys(model, keys: torch.Tensor, delta: int, out: torch.Tensor) -> None:
    """Write into `out` the keys (..., L, D), rotated at their positions, moved on by `delta` positions.
    RoPE's rotations compose, so this is one rotation by delta's angles for every row (rerotate_keys undoes
    and redoes a rotation per row), computed by halves with no concatenation. `out` may be a view of a
    larger buffer (a cache's) and may broadcast over keys; it is computed in float32."""
    cos, sin = rotary_cos_sin(model, torch.tensor([delta], device=keys.device))
    half = keys.shape[-1] // 2
    target = out if out.dtype == torch.float32 else torch.empty(out.shape, device=out.device)
    # k cos + rotate_half(k) sin, with rotate_half(k) = (-k2, k1)
    torch.mul(keys.expand(out.shape), cos[0], out=target)
    target[..., :half].addcmul_(keys[..., half:], sin[0, :half], value=-1)
    target[..., half:].addcmul_(keys[..., :half], sin[0, half:])
    if target is not out:
        out.copy_(target)
