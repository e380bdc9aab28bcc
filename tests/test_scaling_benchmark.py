import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import scaling  # noqa: E402


def test_quick_mode_measures_every_phase(tmp_path):
    out = tmp_path / "scaling.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--quick", "--sizes", "5e4",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    record = json.loads(out.read_text())
    assert {"command", "hardware", "load_average", "settings", "curves"} <= set(record)
    (size,) = record["sizes"]
    assert size["interactions"] == 50_000 and size["broke_first"] is None
    phases = size["phases"]
    assert set(phases) == set(scaling.PHASES)
    assert {name: p["status"] for name, p in phases.items()} == {name: "ok" for name in scaling.PHASES}
    for phase in ("lightgcn_full", "lightgcn_sampled", "pyg_csr", "ultragcn"):
        assert phases[phase]["epoch_s"] == pytest.approx(phases[phase]["step_s"] * phases[phase]["batches_per_epoch"])
    assert phases["lightgcn_sampled"]["sample_s"] > 0 and phases["ultragcn"]["item_item_build_s"] > 0
    history = phases["lightgcn_history"]
    assert history["epoch_s"] == pytest.approx(history["steps_epoch_s"] + 4 * history["refresh_s"])
    assert history["fanouts"] == [10] and history["refresh_s"] > 0
    assert 0 < history["rows_per_step"] <= size["users"] + size["items"]
    assert phases["bpr_mf"]["epoch_s"] == pytest.approx(phases["bpr_mf"]["step_s"] * phases["bpr_mf"]["batches_per_epoch"])
    assert phases["bpr_sampler"]["whole_epoch"] and phases["bpr_sampler"]["triples"] == size["train"]
    assert phases["recommend_all"]["items_per_s"] > 0 and phases["recommend_all"]["matmul_items_per_s"] > 0
    assert phases["evaluation"]["users"] == 200
    for phase in scaling.PHASES:
        assert phases[phase]["peak_rss_mb"] > 0 and phases[phase]["floor"]["floor_mb"] > 0
    assert record["curves"]["LightGCN full-graph epoch"]["values"] == [phases["lightgcn_full"]["epoch_s"]]
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_growth_exponent_is_the_log_log_slope():
    assert scaling.fit_exponent([1e6, 4e6, 16e6], [3.0, 48.0, 768.0]) == pytest.approx(2.0)
    assert scaling.fit_exponent([1e6, 4e6], [5.0, 20.0]) == pytest.approx(1.0)
    assert scaling.fit_exponent([1e6], [5.0]) is None
    sizes = [{"kind": "synthetic", "name": "a", "interactions": 1e6, "phases": {"evaluation": {"all_users_s": 2.0}}},
             {"kind": "synthetic", "name": "b", "interactions": 4e6,
              "phases": {"evaluation": {"all_users_s": 32.0}, "generate": {"seconds": 1.0}}},
             {"kind": "anchor", "name": "gowalla", "interactions": 1027370,
              "phases": {"evaluation": {"all_users_s": 3.0}}}]
    table = scaling.curves(sizes)
    evaluation = table["full-ranking evaluation"]
    assert evaluation["exponent"] == pytest.approx(2.0)
    assert evaluation["anchors"] == {"gowalla": [1027370, 3.0]}
    assert table["generate"]["exponent"] is None


def test_floor_is_embeddings_optimizer_state_and_adjacency():
    args = argparse.Namespace(dim=64, layers=3, recommend_memory_mb=512.0)
    users, items, train = 1000, 2000, 50_000
    floor = scaling.floors(users, items, train, 10_000, args)["lightgcn_full"]
    embeddings = 3000 * 64 * 4
    expected = 4 * embeddings + 2 * train * 8 + 3001 * 8
    assert floor["floor_mb"] == pytest.approx(expected / 2**20, abs=0.1)
    assert floor["gradient_and_adam"] == pytest.approx(3 * embeddings / 2**20, abs=0.1)
    assert floor["activations_mb"] == pytest.approx(3 * embeddings / 2**20, abs=0.1)


def _limits(tmp_path, **overrides):
    args = scaling.parse_args(["--sizes", "5e7", "--cache-dir", str(tmp_path)])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


@pytest.mark.parametrize("limit, overrides", [
    ("time", {"phase_time_limit_s": 0.5}),
    ("memory", {"memory_limit_gb": 0.05}),
])
def test_a_phase_past_its_limit_is_killed_and_says_which(tmp_path, limit, overrides):
    # Generating 50M interactions takes far longer than 0.5 s, and a forked interpreter holds over 50 MB.
    spec = {"kind": "synthetic", "name": "big", "interactions": 50_000_000}
    record = scaling.watch_phase("generate", spec, _limits(tmp_path, **overrides), tmp_path / "big")
    assert record["status"] == limit
    assert limit in record["error"]


def test_merge_joins_phases_of_separate_runs(tmp_path):
    def run(name, phases, command):
        path = tmp_path / name
        sizes = [{"kind": "synthetic", "name": f"synthetic-{n}", "interactions": n, "users": 1, "items": 1,
                  "train": 1, "test": 1, "floors": {}, "broke_first": None,
                  "phases": {"generate": {"seconds": 1.0}, **{p: {"epoch_s": n * v} for p, v in phases.items()}}}
                 for n in (1_000_000, 4_000_000)]
        path.write_text(json.dumps({"command": command, "date": "d", "commit": "c", "sizes": sizes, "curves": {}}))
        return str(path)

    first = run("a.json", {"lightgcn_full": 1e-6, "lightgcn_history": 9.0}, "first")
    second = run("b.json", {"lightgcn_history": 2e-6}, "second")
    merged = scaling.merge_records([first, second])
    assert [r["command"] for r in merged["runs"]] == ["first", "second"]
    size = merged["sizes"][1]
    assert size["phases"]["lightgcn_full"] == {"epoch_s": 4.0, "run": 0}
    assert size["phases"]["lightgcn_history"] == {"epoch_s": 8.0, "run": 1}  # the later run wins
    assert merged["curves"]["LightGCN historical layers epoch"]["exponent"] == pytest.approx(1.0)
