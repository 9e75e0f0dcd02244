"""The KV store: bit-exact round trips, int8, LRU eviction, damaged entries and bad keys."""
import hashlib
import os
import time

import pytest
import torch

from longdoc.errors import LongdocError
from longdoc.storage.kvstore import KVStore


def sha(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def block(seed: int, tokens: int = 40):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(30, 3, tokens, 64, generator=g) * 3, torch.randn(30, 3, tokens, 64, generator=g)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    store = KVStore(tmp_path, "reader-a", dtype)
    keys, values = block(1)
    keys, values = keys.to(getattr(torch, dtype)), values.to(getattr(torch, dtype))
    store.put(sha(1), keys, values, start=37)
    got_k, got_v, start = store.get(sha(1))
    assert start == 37 and got_k.dtype == keys.dtype
    assert torch.equal(got_k, keys) and torch.equal(got_v, values)
    assert sha(1) in store and sha(2) not in store and store.get(sha(2)) is None


def test_int8_is_within_half_a_step_of_each_token_scale(tmp_path):
    store = KVStore(tmp_path, "reader-a", "int8")
    keys, values = block(2)
    size = store.put(sha(1), keys, values, start=0)
    got_k, got_v, _ = store.get(sha(1))
    step = keys.abs().amax(-1, keepdim=True) / 127
    assert ((got_k - keys).abs() <= step / 2 + 1e-3).all()
    assert (got_v - values).abs().max() < 0.05
    assert size < 0.6 * (keys.numel() + values.numel()) * 2  # about half of float16


def test_least_recently_used_entries_are_evicted_first(tmp_path):
    one = KVStore(tmp_path, "reader-a").put(sha(0), *block(0), start=0)
    store = KVStore(tmp_path, "reader-a", max_bytes=int(3.5 * one))
    for n in (1, 2):
        store.put(sha(n), *block(n), start=0)
    past = time.time() - 100
    for n in (0, 1, 2):
        os.utime(store._path(sha(n)), (past + n, past + n))
    store.get(sha(0))  # now the most recently used
    store.put(sha(3), *block(3), start=0)
    assert [sha(n) in store for n in range(4)] == [True, False, True, True]
    stats = store.stats()
    assert stats["entries"] == 3 and stats["bytes"] <= store.max_bytes
    assert stats["readers"]["reader-a"]["entries"] == 3


@pytest.mark.parametrize("damage", ["truncated", "garbled tensor bytes", "zeroed tail", "no checksum"])
@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_a_damaged_entry_is_dropped_and_reported_missing(tmp_path, damage, dtype):
    """Garbled bytes inside a tensor still load as a tensor: only the checksum tells (an answer came out
    empty from such an entry, with no error)."""
    store = KVStore(tmp_path, "reader-a", dtype)
    keys, values = block(1)
    store.put(sha(1), keys, values, start=0)
    path = store._path(sha(1))
    data = bytearray(path.read_bytes())
    if damage == "truncated":  # as by a full disk
        data = data[:1000]
    elif damage == "garbled tensor bytes":
        for i in range(len(data) // 2, len(data) // 2 + 64):
            data[i] ^= 0x5A
    elif damage == "zeroed tail":
        data[-4096:] = bytes(4096)
    else:  # an entry written without a checksum is not trusted either
        from safetensors.torch import load_file, save_file
        save_file(load_file(str(path)), str(path))
        data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data))
    assert store.get(sha(1)) is None and not path.exists() and store.dropped == 1
    store.put(sha(1), keys, values, start=0)  # computed again, and good again
    assert store.get(sha(1)) is not None and store.dropped == 1


def test_bad_keys_and_settings_are_refused(tmp_path):
    with pytest.raises(LongdocError, match="not a hex digest"):
        KVStore(tmp_path, "reader-a").get("../../etc/passwd")
    with pytest.raises(LongdocError, match="reader id"):
        KVStore(tmp_path, "../x")
    with pytest.raises(LongdocError, match="unknown KV dtype"):
        KVStore(tmp_path, "reader-a", "float8")


def test_clear_removes_every_reader(tmp_path):
    KVStore(tmp_path, "reader-a").put(sha(1), *block(1, 4), start=0)
    KVStore(tmp_path, "reader-b").put(sha(1), *block(1, 4), start=0)
    assert KVStore(tmp_path, "reader-a").clear() == 2
    assert KVStore(tmp_path, "reader-a").stats()["entries"] == 0
