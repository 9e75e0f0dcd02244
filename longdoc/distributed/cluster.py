"""Connecting to Ray: an address of a running cluster, or "local" for one started in this process."""
from __future__ import annotations

import os

from ..errors import LongdocError


def connect(address: str) -> None:
    """ray.init once. "local" starts a private cluster on this machine (no dashboard); anything else
    is a cluster address (`ray-head:6379`, or `auto`)."""
    try:
        import ray
    except ImportError:
        raise LongdocError("--ray needs Ray: pip install 'longdoc[distributed]'") from None
    if ray.is_initialized():
        return
    options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    # Workers import longdoc from wherever this process does (an editable install, a checkout).
    env = {"env_vars": {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"),
                        "LONGDOC_CACHE": os.environ.get("LONGDOC_CACHE", ""),
                        "TOKENIZERS_PARALLELISM": "false"}}
    try:
        if address == "local":
            # A private cluster of this process, on this machine only: no dashboard, no token.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(num_cpus=os.cpu_count(), runtime_env=env, **options)
        else:
            ray.init(address=address, runtime_env=env, **options)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise LongdocError(f"cannot connect to Ray at {address!r}: {e}") from None
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False


def actor_pool(limit: int):
    """Ray Data's actor pool for stateful stages: one actor per cluster CPU, at most `limit`."""
    import ray
    import ray.data

    return ray.data.ActorPoolStrategy(size=max(1, min(limit, int(ray.cluster_resources().get("CPU", 1)))))
