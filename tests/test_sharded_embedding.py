"""graphrec.parallel.sharded_embedding: a row-sharded table on 2 gloo ranks equals one process's table."""
from __future__ import annotations

import json
import tempfile

import pytest
import torch
import torch.multiprocessing as mp

from graphrec.parallel.sharded_embedding import ShardedEmbedding, row_offsets

ROWS, DIM = 11, 4
#: each rank's ids: repeats, ids of both shards, the shards' first and last rows
IDS = [[0, 5, 6, 10, 5, 3, 6], [10, 1, 1, 7, 8, 0]]


def loss_of(rows: torch.Tensor, rank: int) -> torch.Tensor:
    weights = torch.arange(rows.numel(), dtype=rows.dtype).reshape(rows.shape) / 10 + rank
    return (rows * weights).pow(2).sum()


def test_row_offsets_are_balanced_blocks():
    assert row_offsets(11, 2) == [0, 6, 11]
    assert row_offsets(10, 3) == [0, 4, 7, 10]
    assert row_offsets(5, 1) == [0, 5]


def test_one_process_is_a_plain_embedding():
    table = ShardedEmbedding(ROWS, DIM, rank=0, world_size=1)
    ids = torch.tensor([[3, 3], [10, 0]])
    rows = table(ids)
    assert torch.equal(rows, table.weight[ids])
    loss_of(rows, 0).backward()
    reference = table.weight.detach().clone().requires_grad_()
    loss_of(reference[ids], 0).backward()
    assert torch.equal(table.weight.grad, reference.grad)
    assert sum(table.bytes.values()) == 0                       # nothing leaves the process
    with pytest.raises(IndexError, match="ids must lie"):
        table(torch.tensor([ROWS]))


def _worker(rank: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    table = ShardedEmbedding(ROWS, DIM, seed=3)
    ids = torch.tensor(IDS[rank])
    rows = table(ids)
    loss_of(rows, rank).backward()
    shards = [None, None]
    dist.all_gather_object(shards, {"weight": table.weight.detach().tolist(), "grad": table.weight.grad.tolist(),
                                    "rows": rows.detach().tolist(), "bytes": dict(table.bytes)})
    if rank == 0:
        json.dump(shards, open(out, "w"))
    dist.destroy_process_group()


def test_two_ranks_equal_one_process_and_count_every_byte():
    with tempfile.TemporaryDirectory() as folder:
        out = f"{folder}/out.json"
        mp.spawn(_worker, args=(f"{folder}/init", out), nprocs=2)
        shards = json.load(open(out))
    full = torch.tensor(shards[0]["weight"] + shards[1]["weight"], requires_grad=True)
    assert full.shape == (ROWS, DIM)
    for rank in (0, 1):
        rows = full[torch.tensor(IDS[rank])]
        torch.testing.assert_close(torch.tensor(shards[rank]["rows"]), rows.detach(), rtol=0, atol=0)
        loss_of(rows, rank).backward()
    grad = torch.tensor(shards[0]["grad"] + shards[1]["grad"])
    torch.testing.assert_close(grad, full.grad, rtol=1e-6, atol=1e-6)
    # Exact volume: rank 0 owns rows 0..5. Rank 0 asks rank 1 for 10, 6, 6 (3 ids); rank 1 asks rank 0
    # for 1, 1, 0 (3 ids). Each sends 1 count, its 3 ids, answers 3 rows and returns 3 gradients.
    for rank in (0, 1):
        assert shards[rank]["bytes"] == {"counts": 8, "ids": 3 * 8, "rows": 3 * DIM * 4, "grads": 3 * DIM * 4}
