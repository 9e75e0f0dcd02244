import pytest
from conftest import FIXTURES

from longdoc.errors import LongdocError
from longdoc.evaluation.results_db import Cell, ResultsDB
from longdoc.evaluation.run_config import load_eval_config

GOOD = """
name = "backends"
seed = 3
limit = 20
datasets = ["quoref", {name = "python-docs-qa", limit = 5}]

[retrieval]
modes = ["dense", "hybrid"]
k = [20, 1, 5, 5]

[qa]
attention = ["full", "block-r1", "retrieval"]
k = [3, 5]

[needle]
lengths = [4096, 8192]
depths = [0.0, 0.5, 1]
attention = ["landmark"]

[settings]
answer = {max_new_tokens = 16}
"""


def _write(tmp_path, text):
    path = tmp_path / "eval.toml"
    path.write_text(text)
    return path


def test_a_full_config_is_read(tmp_path):
    cfg = load_eval_config(_write(tmp_path, GOOD))
    assert [(d.name, d.limit) for d in cfg.datasets] == [("quoref", 20), ("python-docs-qa", 5)]
    assert cfg.modes == ("dense", "hybrid") and cfg.ks == (1, 5, 20)
    assert cfg.attention == ("full", "block-r1", "retrieval") and cfg.qa_ks == (3, 5) and cfg.qa_modes == ("hybrid",)
    assert cfg.needle.lengths == (4096, 8192) and cfg.needle.depths == (0.0, 0.5, 1.0)
    assert cfg.settings.answer.max_new_tokens == 16 and cfg.seed == 3 and cfg.name == "backends"


def test_flags_override_the_file_and_stand_alone(tmp_path):
    cfg = load_eval_config(_write(tmp_path, GOOD), limit=7, datasets=["drop"], **{"qa.attention": ["block"]})
    assert [(d.name, d.limit) for d in cfg.datasets] == [("drop", 7)] and cfg.attention == ("block",)
    assert cfg.modes == ("dense", "hybrid")  # untouched keys stay
    alone = load_eval_config(None, datasets=[f"beir:{FIXTURES / 'beir_mini'}"])
    assert alone.attention == () and alone.ks == (1, 5, 20)


@pytest.mark.parametrize("text, message", [
    ('datasets = ["quoref"]\nmodel = "x"', r"unknown key\(s\) 'model'; known: .*datasets"),
    ('datasets = ["quoref"]\n[qa]\nbackends = ["full"]', r"unknown key\(s\) in \[qa\] 'backends'"),
    ('datasets = ["quoref"]\n[retrieval]\nk = [0, 5]', r"retrieval.k must be integers of at least 1"),
    ('datasets = ["quoref"]\n[retrieval]\nk = ["5"]', r"retrieval.k must be integers"),
    ('datasets = ["quoref"]\n[retrieval]\nmodes = ["dense", "splade"]', r"retrieval.modes: unknown 'splade'"),
    ('datasets = ["quoref"]\n[qa]\nattention = ["sparse"]', r"qa.attention: unknown attention backend 'sparse'"),
    ('datasets = ["quoref"]\n[qa]\nattention = ["block-x2"]', r"unknown attention backend 'block-x2'.*block-fN"),
    ('datasets = ["quoref"]\n[qa]\nattention = ["full-f1"]', r"unknown attention backend 'full-f1'"),
    ('datasets = ["trivia"]', r"datasets: unknown dataset 'trivia'"),
    ('datasets = [{name = "quoref", limt = 3}]', r"unknown key\(s\) in \[datasets\[\]\] 'limt'"),
    ('datasets = ["quoref"]\nseed = "one"', r"seed must be an integer"),
    ('[needle]\nlengths = [4096]\nattention = ["full"]', r"\[needle\] needs depths"),
    ('[needle]\nlengths = [4096]\ndepths = [1.5]\nattention = ["full"]', r"needle.depths must be numbers from 0 to 1"),
    ('limit = 5', r"nothing to evaluate"),
    ('datasets = ["quoref"]\n[settings]\nanswer = {max_tokens = 3}', r"\[settings\]: unknown setting\(s\): answer_max_tokens"),
    ('datasets = ["quoref"\n', r"eval.toml: not valid TOML"),
    ('datasets = ["quoref"]\nretrieval = 5', r"retrieval must be a table"),
])
def test_bad_configs_are_refused_with_the_file_and_the_cause(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(LongdocError, match=message) as info:
        load_eval_config(path)
    assert str(path) in str(info.value)


def test_block_recoveries_are_named_by_their_letters():
    from longdoc.evaluation.run_config import parse_backend

    assert parse_backend("block") == ("block", 0, 0, 0)
    assert parse_backend("block-r1-e16-f2") == ("block", 1, 16, 2)
    assert parse_backend("full") == ("full", 0, 0, 0)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(LongdocError, match=r"missing.toml: cannot read the eval config"):
        load_eval_config(tmp_path / "missing.toml")


def test_a_results_file_holds_one_configuration(tmp_path):
    cfg = load_eval_config(None, datasets=["quoref"])
    path = tmp_path / "r.db"
    with ResultsDB(path) as db:
        db.claim(cfg.fingerprints(), "defaults")
        run = db.start_run({"command": "x"}, {})
        db.add(Cell("quoref", "retrieval", "dense"), "q1", run, {"recall@1": 1.0}, {})
        db.add(Cell("quoref", "retrieval", "dense"), "q1", run, {"recall@1": 0.0}, {})  # a re-run keeps the first
        assert db.rows(Cell("quoref", "retrieval", "dense"))["q1"]["metrics"] == {"recall@1": 1.0}
    other = load_eval_config(None, datasets=["quoref"], settings={"answer": {"max_new_tokens": 5}})
    assert other.fingerprint() != cfg.fingerprint()
    assert load_eval_config(None, datasets=["drop"], limit=3).fingerprint() == cfg.fingerprint()  # grid only grows
    with ResultsDB(path) as db, pytest.raises(LongdocError, match="holds results made with other settings"):
        db.claim(other.fingerprints(), "other")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(LongdocError, match="garbage.db: not a longdoc results file"):
        ResultsDB(garbage)


def test_a_setting_added_later_at_its_off_value_or_set_per_backend_keeps_older_results_files_resumable():
    import dataclasses
    import hashlib
    import json

    from longdoc.evaluation.run_config import EvalConfig

    base = EvalConfig()
    before = dataclasses.asdict(base.settings)
    del before["answer"]["reencode_focus"], before["parse_timeout_s"], before["head_vectors"]  # as files made before
    basis = {"settings": before, "seed": base.seed, "retrieval_k": sorted(base.ks)}
    assert base.fingerprint() == hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]
    assert dataclasses.replace(base, settings=base.settings.replace(parse_timeout_s=5.0)).fingerprint() != base.fingerprint()
    # A file written after parse_timeout_s came and before it was listed as added at its off value hashed it.
    before["parse_timeout_s"] = 120.0
    basis = {"settings": before, "seed": base.seed, "retrieval_k": sorted(base.ks)}
    assert hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16] in base.fingerprints()[1:]
    # The recoveries are set per backend by name (block-r1-f1), so their settings leave the results file as it was.
    for change in ({"answer_reencode_focus": 0}, {"answer_reencode_focus": 2}, {"answer_recompute_top": 1}):
        assert dataclasses.replace(base, settings=base.settings.replace(**change)).fingerprint() == base.fingerprint()
