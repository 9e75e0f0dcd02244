"""The eval runner's configuration: a TOML file or the same choices as flags, validated in one place.

    name = "quoref-backends"         # label in reports (default: the results file's name)
    seed = 0
    limit = 200                      # questions per dataset (each dataset may set its own)
    datasets = ["quoref", {name = "python-docs-qa"}, "beir:path/to/folder"]

    [retrieval]                      # every dataset x mode, scored at each cut-off
    modes = ["dense", "multihead", "bm25", "hybrid"]
    k = [1, 5, 10, 20]

    [qa]                             # dataset x mode x attention x k (passages per question)
    attention = ["full", "block", "block-r1", "landmark", "retrieval"]
    modes = ["hybrid"]
    k = [5]

    [needle]                         # passkey in the essays: length x depth x attention
    lengths = [4096, 8192]
    depths = [0.0, 0.5, 1.0]
    attention = ["full", "retrieval"]

    [settings]                       # longdoc settings, as in a settings file
    answer = {max_new_tokens = 32}
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ATTENTIONS, Settings, load_settings
from ..errors import LongdocError
from ..retrieval import MODES
from .registry import check_dataset_name

_KEYS = {"": {"name", "seed", "limit", "datasets", "workdir", "retrieval", "qa", "needle", "settings", "ray"},
         "retrieval": {"modes", "k"}, "qa": {"attention", "modes", "k"},
         "needle": {"lengths", "depths", "attention"}, "datasets[]": {"name", "limit", "index"}}


# Settings added after results files were first written, with the value that leaves every answer as it
# was: at that value they stay out of the fingerprint, so those results files still resume.
SETTINGS_ADDED_OFF = [("answer.reencode_focus", 0), ("parse_timeout_s", 120.0), ("head_vectors", False)]
# Block-Attention's recoveries are set per backend by its name (block-r1-e16-f1), whatever the settings
# say, so their settings are hashed at these values.
BACKEND_SETTINGS = {"recompute_top": 0, "reencode_first": 0, "reencode_focus": 0}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    limit: int | None = None
    index: str | None = None  # answer from this index (datasets without passages: NQ-open, FlashRAG)


@dataclass(frozen=True)
class NeedleSpec:
    lengths: tuple[int, ...]
    depths: tuple[float, ...]
    attention: tuple[str, ...]


@dataclass(frozen=True)
class EvalConfig:
    datasets: tuple[DatasetSpec, ...] = ()
    modes: tuple[str, ...] = ("dense", "bm25", "hybrid")
    ks: tuple[int, ...] = (1, 5, 20)
    attention: tuple[str, ...] = ()  # reader backends; none: retrieval only
    qa_modes: tuple[str, ...] = ("hybrid",)
    qa_ks: tuple[int, ...] = (5,)
    needle: NeedleSpec | None = None
    seed: int = 0
    name: str = ""
    workdir: Path | None = None
    settings: Settings = field(default_factory=Settings)
    ray: str | None = None  # answer on a Ray cluster (address, or "local"); results are the same

    def fingerprint(self) -> str:
        """What a stored result depends on beyond its own cell: a results file holds one fingerprint."""
        return self.fingerprints()[0]

    def fingerprints(self) -> list[str]:
        """This config's fingerprint, then the ones results files written with the same answers carry: each
        setting added later, at its off value, was hashed in files made after it came and before it was
        listed in SETTINGS_ADDED_OFF."""
        settings = dataclasses.asdict(self.settings)
        settings["answer"].update(BACKEND_SETTINGS)
        at_off = []
        for name, off in SETTINGS_ADDED_OFF:
            *table, key = name.split(".")
            where = settings[table[0]] if table else settings
            if where.get(key) == off:
                at_off.append((where, key, where.pop(key)))
        found = [self._hash(settings)]
        for kept in itertools.chain.from_iterable(itertools.combinations(at_off, n) for n in range(1, len(at_off) + 1)):
            for where, key, value in kept:
                where[key] = value
            found.append(self._hash(settings))
            for where, key, _ in kept:
                del where[key]
        return found

    def _hash(self, settings: dict) -> str:
        basis = {"settings": settings, "seed": self.seed, "retrieval_k": sorted(self.ks)}
        return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def parse_backend(spec: str) -> tuple[str, int, int, int]:
    """An attention backend: full, block, landmark, retrieval, or block with recoveries: block-rN re-encodes
    the N best passages whole, block-eN the first N tokens of every passage, block-fN the matched chunk of
    the N best cached passages (several: block-r1-e16).
    Returns (attention, recompute_top, reencode_first, reencode_focus)."""
    name, *options = spec.strip().split("-")
    found = {"r": 0, "e": 0, "f": 0}
    ok = name in ATTENTIONS and (not options or name == "block")
    for option in options:
        ok = ok and option[:1] in found and option[1:].isdigit()
        if ok:
            found[option[0]] = int(option[1:])
    if not ok:
        raise LongdocError(f"unknown attention backend {spec!r}; use {', '.join(ATTENTIONS)}, block-rN, block-eN or block-fN")
    return name, found["r"], found["e"], found["f"]


def load_eval_config(path: str | Path | None = None, **flags) -> EvalConfig:
    """The config file (if any) with flags laid over it: flags use the file's key names, dotted for
    tables ("retrieval.k"), and None means not given."""
    data: dict = {}
    where = "flags"
    if path is not None:
        where = str(path)
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as e:
            raise LongdocError(f"{path}: cannot read the eval config: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise LongdocError(f"{path}: not valid TOML: {e}") from None
    for key, value in flags.items():
        if value is not None:
            table, _, name = key.rpartition(".")
            (data.setdefault(table, {}) if table else data)[name] = value
    return config_from_dict(data, where)


def config_from_dict(data: dict, where: str = "config") -> EvalConfig:
    def fail(message: str):
        raise LongdocError(f"{where}: {message}")

    def check_keys(table: dict, scope: str):
        unknown = sorted(set(table) - _KEYS[scope])
        if unknown:
            label = f"in [{scope}] " if scope else ""
            fail(f"unknown key(s) {label}{', '.join(map(repr, unknown))}; known: {', '.join(sorted(_KEYS[scope]))}")

    def table(name: str) -> dict | None:
        value = data.get(name)
        if value is not None and not isinstance(value, dict):
            fail(f"{name} must be a table ([{name}])")
        if value is not None:
            check_keys(value, name)
        return value

    def ints(value, key: str, minimum: int = 1) -> tuple[int, ...]:
        items = value if isinstance(value, list) else [value]
        if not items or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in items):
            fail(f"{key} must be integers of at least {minimum} (got {value!r})")
        return tuple(items)

    def names(value, key: str, allowed) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items or any(not isinstance(v, str) for v in items):
            fail(f"{key} must be a list of names (got {value!r})")
        for v in items:
            if callable(allowed):
                try:
                    allowed(v)
                except LongdocError as e:
                    fail(f"{key}: {e}")
            elif v not in allowed:
                fail(f"{key}: unknown {v!r}; choose from {', '.join(allowed)}")
        return tuple(items)

    check_keys(data, "")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        fail(f"seed must be an integer (got {seed!r})")
    limit = data.get("limit")
    if limit is not None:
        ints(limit, "limit")
    datasets = []
    raw = data.get("datasets", [])
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            fail(f"each dataset is a name or a table with a name (got {item!r})")
        check_keys(item, "datasets[]")
        names(item["name"], "datasets", check_dataset_name)
        if item.get("limit") is not None:
            ints(item["limit"], f"limit of {item['name']}")
        if item.get("index") is not None and not isinstance(item["index"], str):
            fail(f"index of {item['name']} must be a folder path (got {item['index']!r})")
        datasets.append(DatasetSpec(item["name"], item.get("limit", limit), item.get("index")))
    retrieval, qa, needle = table("retrieval") or {}, table("qa") or {}, table("needle")
    kwargs = {}
    if "modes" in retrieval:
        kwargs["modes"] = names(retrieval["modes"], "retrieval.modes", MODES)
    if "k" in retrieval:
        kwargs["ks"] = tuple(sorted(set(ints(retrieval["k"], "retrieval.k"))))
    if "attention" in qa:
        kwargs["attention"] = names(qa["attention"], "qa.attention", parse_backend)
    if "modes" in qa:
        kwargs["qa_modes"] = names(qa["modes"], "qa.modes", MODES)
    if "k" in qa:
        kwargs["qa_ks"] = ints(qa["k"], "qa.k")
    if needle is not None:
        missing = sorted({"lengths", "depths", "attention"} - set(needle))
        if missing:
            fail(f"[needle] needs {', '.join(missing)}")
        depths = needle["depths"] if isinstance(needle["depths"], list) else [needle["depths"]]
        if not depths or any(isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d <= 1 for d in depths):
            fail(f"needle.depths must be numbers from 0 to 1 (got {needle['depths']!r})")
        kwargs["needle"] = NeedleSpec(ints(needle["lengths"], "needle.lengths", 256), tuple(float(d) for d in depths),
                                      names(needle["attention"], "needle.attention", parse_backend))
    if not datasets and needle is None:
        fail("nothing to evaluate: name datasets (datasets = [...] or --dataset) or a [needle] table")
    settings_table = data.get("settings", {})
    if not isinstance(settings_table, dict):
        fail("settings must be a table ([settings])")
    try:
        settings = load_settings(table=settings_table)
    except LongdocError as e:
        fail(f"[settings]: {e}")
    name = data.get("name", "")
    if not isinstance(name, str):
        fail(f"name must be a string (got {name!r})")
    workdir = data.get("workdir")
    ray = data.get("ray")
    if ray is not None and not isinstance(ray, str):
        fail(f"ray must be a cluster address or \"local\" (got {ray!r})")
    return EvalConfig(datasets=tuple(datasets), seed=seed, name=name, settings=settings,
                      workdir=Path(workdir) if workdir else None, ray=ray, **kwargs)
