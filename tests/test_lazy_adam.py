"""LazyAdam (train.optimizer=sparse_adam): torch's SparseAdam, value for value, on the touched rows."""
import pytest
import torch
import torch.nn.functional as F

from graphrec.train.lazy_adam import LazyAdam


def _run(optimizer_cls, steps=5, maximize=False):
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(12, 4))
    optimizer = optimizer_cls([weight], lr=0.05, maximize=maximize)
    for step in range(steps):
        rows = torch.tensor([[0, 3, 3, 7], [1, 2, 5, 5], [9, 9, 9, 0]][step % 3])  # repeats: summed gradients
        loss = (F.embedding(rows, weight, sparse=True) ** 3).sum() * (step + 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return weight.detach(), optimizer.state_dict()


@pytest.mark.parametrize("maximize", [False, True])
def test_lazy_adam_equals_sparse_adam(maximize):
    ours, our_state = _run(LazyAdam, maximize=maximize)
    theirs, their_state = _run(torch.optim.SparseAdam, maximize=maximize)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(our_state["state"][0][key], their_state["state"][0][key], rtol=1e-6, atol=1e-7)
    assert our_state["state"][0]["step"] == their_state["state"][0]["step"] == 5


def test_lazy_adam_leaves_untouched_rows_and_takes_sparse_adam_state():
    torch.manual_seed(0)
    before = torch.randn(12, 4)
    ours, state = _run(LazyAdam)
    untouched = [4, 6, 8, 10, 11]
    torch.manual_seed(0)
    assert torch.equal(ours[untouched], torch.randn(12, 4)[untouched])
    assert torch.count_nonzero(state["state"][0]["exp_avg"][untouched]) == 0
    # a SparseAdam checkpoint loads into LazyAdam (same state layout)
    weight = torch.nn.Parameter(before.clone())
    LazyAdam([weight], lr=0.05).load_state_dict(state)


def test_lazy_adam_refuses_dense_gradients():
    weight = torch.nn.Parameter(torch.randn(3, 2))
    weight.grad = torch.ones(3, 2)
    with pytest.raises(RuntimeError, match="sparse gradients"):
        LazyAdam([weight]).step()

