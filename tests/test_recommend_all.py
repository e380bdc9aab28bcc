import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
import torch

from graphrec.data.idmap import IdMap
from graphrec.metrics import top_k_items
from graphrec.recommend_all import RESULT_BYTES_PER_ROW, user_batch_size, write_recommendations


@pytest.fixture
def case():
    generator = torch.Generator().manual_seed(0)
    users, items, dim = 37, 23, 8
    user_emb = torch.randn(users, dim, generator=generator)
    item_emb = torch.randn(items, dim, generator=generator)
    item_emb[5] = item_emb[3]  # a tie: the lower index must come first
    rng = np.random.default_rng(0)
    seen = sp.random(users, items, density=0.3, random_state=rng, format="csr")
    seen.data[:] = 1.0
    return user_emb, item_emb, seen


def _expected_rows(user_emb, item_emb, seen, k, users):
    items, scores = top_k_items(user_emb, item_emb, k, seen, users)
    rows = []
    for user, row_items, row_scores in zip(users, items, scores):
        keep = row_items >= 0
        rows += [(int(user), rank, int(item), float(score))
                 for rank, (item, score) in enumerate(zip(row_items[keep], row_scores[keep]), start=1)]
    return rows


def _assert_same_rows(got, expected):
    # Scores may differ in the last bit: BLAS blocks a 5-user matmul unlike a 37-user one.
    assert [row[:3] for row in got] == [row[:3] for row in expected]
    assert [row[3] for row in got] == pytest.approx([row[3] for row in expected], rel=1e-5, abs=1e-6)


def _read_rows(path):
    table = pq.read_table(path)
    return list(zip(*(table.column(name).to_pylist() for name in ("user", "rank", "item", "score"))))


def test_file_equals_top_k_items_batch_by_batch(case, tmp_path):
    user_emb, item_emb, seen = case
    # A tiny budget forces several batches (row groups): the result must not depend on the batching.
    budget_mb = 5 * (23 * 4 + 10 * RESULT_BYTES_PER_ROW) / (1 << 20)
    report = write_recommendations(tmp_path / "recs.parquet", user_emb, item_emb, k=10, exclude=seen,
                                   max_memory_mb=budget_mb, progress=False)
    assert report.batch_size == 5
    assert pq.ParquetFile(report.path).num_row_groups == -(-37 // 5)
    expected = _expected_rows(user_emb, item_emb, seen, 10, np.arange(37))
    _assert_same_rows(_read_rows(report.path), expected)
    assert report.rows == len(expected) and report.users == 37
    schema = pq.read_schema(report.path)
    types = [str(schema.field(n).type) for n in ("user", "rank", "item", "score")]
    assert types == ["int64", "int32", "int64", "float"]


def test_seen_items_never_recommended(case, tmp_path):
    user_emb, item_emb, seen = case
    path = write_recommendations(tmp_path / "r.parquet", user_emb, item_emb, k=5, exclude=seen, progress=False).path
    table = pq.read_table(path)
    users, items = np.asarray(table["user"]), np.asarray(table["item"])
    assert not np.asarray(seen[users, items]).any()


def test_batch_size_follows_the_memory_setting():
    # 1 MiB over rows of 1000 items x 4 bytes + 20 results: 1048576 // (4000 + 720) users.
    assert user_batch_size(1000, 20, 1.0) == (1 << 20) // (4000 + 20 * RESULT_BYTES_PER_ROW)
    assert user_batch_size(10_000_000, 20, 1.0) == 1  # one user's scores is the floor
    big = user_batch_size(1000, 20, 64.0)
    assert (big * (1000 * 4 + 20 * RESULT_BYTES_PER_ROW)) <= 64 * (1 << 20)


def test_ids_written_in_the_users_own_id_space(case, tmp_path):
    user_emb, item_emb, seen = case
    user_ids = IdMap([f"user-{i}" for i in range(37)])
    item_ids = np.arange(23) * 100 + 7
    users = np.array([4, 0, 36])
    path = write_recommendations(tmp_path / "ids.parquet", user_emb, item_emb, k=3, exclude=seen, users=users,
                                 user_ids=user_ids, item_ids=item_ids, progress=False).path
    expected = [(f"user-{u}", r, int(i) * 100 + 7, s)
                for u, r, i, s in _expected_rows(user_emb, item_emb, seen, 3, users)]
    _assert_same_rows(_read_rows(path), expected)
    assert str(pq.read_schema(path).field("user").type) == "string"


def test_k_past_the_unseen_items_writes_no_padding(case, tmp_path):
    user_emb, item_emb, _ = case
    seen = sp.lil_matrix((37, 23), dtype=np.float32)
    seen[0, :20] = 1.0  # user 0 has 3 unseen items
    seen[1, :] = 1.0  # user 1 has none
    seen = seen.tocsr()
    path = write_recommendations(tmp_path / "k.parquet", user_emb, item_emb, k=30, exclude=seen,
                                 users=np.array([0, 1, 2]), progress=False).path
    table = pq.read_table(path).to_pandas()
    assert (table["item"] >= 0).all() and np.isfinite(table["score"]).all()
    assert table.groupby("user").size().to_dict() == {0: 3, 2: 23}
    assert table[table.user == 0]["rank"].tolist() == [1, 2, 3]
    assert sorted(table[table.user == 0]["item"]) == [20, 21, 22]


def test_no_users_gives_an_empty_file_with_the_schema(case, tmp_path):
    user_emb, item_emb, seen = case
    report = write_recommendations(tmp_path / "empty.parquet", user_emb, item_emb, k=5, exclude=seen,
                                   users=np.array([], dtype=np.int64), progress=False)
    table = pq.read_table(report.path)
    assert table.num_rows == 0 and table.column_names == ["user", "rank", "item", "score"]
    assert report.users == 0 and report.rows == 0


def test_mismatched_ids_are_refused(case, tmp_path):
    user_emb, item_emb, seen = case
    with pytest.raises(ValueError, match="item ids hold 3 ids for 23 items"):
        write_recommendations(tmp_path / "x.parquet", user_emb, item_emb, item_ids=np.arange(3), progress=False)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by benchmarks/gpu/device_check.sh)")
def test_cuda_embeddings_write_the_cpu_file(case, tmp_path):
    user_emb, item_emb, seen = case
    budget_mb = 5 * (23 * 4 + 10 * RESULT_BYTES_PER_ROW) / (1 << 20)
    on_cpu = write_recommendations(tmp_path / "cpu.parquet", user_emb, item_emb, k=10, exclude=seen,
                                   max_memory_mb=budget_mb, progress=False).path
    on_gpu = write_recommendations(tmp_path / "gpu.parquet", user_emb.cuda(), item_emb.cuda(), k=10, exclude=seen,
                                   max_memory_mb=budget_mb, progress=False).path
    _assert_same_rows(_read_rows(on_gpu), _read_rows(on_cpu))


def test_progress_bar_counts_users_per_second(case, tmp_path, capsys):
    user_emb, item_emb, seen = case
    write_recommendations(tmp_path / "p.parquet", user_emb, item_emb, k=5, exclude=seen, progress=True)
    err = capsys.readouterr().err
    assert "100%" in err and "users/s" in err


def test_throughput_benchmark_runs_and_projects(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import recommend_all_throughput

    record = recommend_all_throughput.main(["--users", "300", "--items", "500", "--measure-users", "100",
                                            "--seen", "5", "--out", str(tmp_path / "r.json")])
    assert record["rows_written"] == 100 * 20 and record["items_per_s"] > 0 and record["matmul_items_per_s"] > 0
    assert record["all_users_projected_s"] == pytest.approx(record["seconds"] * 3, rel=0.02, abs=0.05)
    seen = recommend_all_throughput.seen_items(50, 40, 6)
    assert seen.shape == (50, 40) and np.all(np.diff(seen.indptr) <= 6) and seen.max() == 1


def test_prebuilt_item_tiles_give_the_same_top_k(case):
    from graphrec.metrics.ranking import item_tiles

    user_emb, item_emb, seen = case
    users = np.arange(0, 37, 3)
    expected = top_k_items(user_emb, item_emb, 6, seen, users, chunk_size=4, item_tile=5)
    tiles = item_tiles(item_emb, 5)
    assert [offset for offset, _ in tiles] == [0, 5, 10, 15, 20] and tiles[-1][1].shape == (item_emb.shape[1], 3)
    got = top_k_items(user_emb, item_emb, 6, seen, users, chunk_size=4, tiles=tiles)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
