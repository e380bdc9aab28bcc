"""Sampled-subgraph training: LightGCN on BPR batches, CatGCN on node minibatches.

The strong checks: with fan-outs that take every neighbour, propagation over the sampled
K-hop subgraph gives the full-graph values on the batch's nodes (scores, loss, gradients),
and whole training runs through the Trainer match full-graph training step for step.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphrec import runs
from graphrec.config import ConfigError, SamplingConfig, TrainConfig, build_run_config
from graphrec.data.categorical import categorical_graph
from graphrec.data.csr import CSRGraph
from graphrec.data.interactions import InteractionGraph
from graphrec.models import LightGCN, get_model_entry
from graphrec.nn import SubgraphPropagation
from graphrec.sampling import LinkNeighborSampler
from graphrec.sampling.neighbor import NeighborSampler
from graphrec.train.node_classification import NodeClassificationTask
from graphrec.train.sampled_node_classification import SampledNodeClassificationTask
from graphrec.train.checkpoint import load_checkpoint
from graphrec.train.sampled_recommendation import SampledRecommendationTask


def random_interactions(num_users=14, num_items=17, density=0.25, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.random((num_users, num_items)) < density
    dense[np.arange(num_users), rng.integers(0, num_items, num_users)] = True   # every user has an item
    dense[rng.integers(0, num_users, num_items), np.arange(num_items)] = True   # every item has a user
    return sp.csr_matrix(dense.astype(np.float32))


def link_batch(train, fanouts, seed=0, batch_size=8):
    sampler = LinkNeighborSampler(train, fanouts, batch_size=batch_size, seed=seed)
    return sampler, next(iter(sampler.loader(epoch=0)))


def propagation_for(sampler, normalization="unbiased"):
    degree = np.diff(sampler.neighbors.relations[("node", "to", "node")].indptr)
    return SubgraphPropagation(degree, normalization=normalization)


@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("normalization", ["unbiased", "full"])
def test_lightgcn_all_neighbours_equals_full_graph(num_layers, normalization):
    train = random_interactions()
    torch.manual_seed(0)
    model = LightGCN(*train.shape, embedding_dim=8, num_layers=num_layers)
    model.prepare(train)
    sampler, batch = link_batch(train, [-1] * num_layers)
    propagation = propagation_for(sampler, normalization)

    users, items = model()
    full = torch.cat([users, items])
    sub = model.subgraph_embeddings(batch, propagation)
    torch.testing.assert_close(sub, full[batch.n_id[: batch.batch_size]], rtol=1e-5, atol=1e-6)

    # Loss and gradients equal the full-graph loss of the same triples.
    model.zero_grad()
    loss = model.subgraph_loss(batch, propagation)
    loss.backward()
    grad_sub = model.embedding.weight.grad.clone()
    triples = next(iter(sampler.triples.loader(epoch=0)))
    model.zero_grad()
    reference = model.recommendation_loss(triples.users, triples.pos_items, triples.neg_items)
    reference.backward()
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_sub, model.embedding.weight.grad, rtol=1e-4, atol=1e-6)


class ItemTable(torch.nn.Module):
    """Stands in for an ImageNodeEncoder over the items: one learned vector per item."""

    def __init__(self, num_items, dim):
        super().__init__()
        self.num_nodes, self.out_dim = num_items, dim
        self.table = torch.nn.Embedding(num_items, dim)

    def forward(self, items):
        return self.table(items)

    def all_features(self):
        return self.table.weight


def test_sampled_lightgcn_loss_includes_item_images():
    # The sampled loss adds the items' image term as the full-graph loss does (it used to leave it out).
    train = random_interactions()
    torch.manual_seed(0)
    model = LightGCN(*train.shape, embedding_dim=8, num_layers=2).attach_item_images(ItemTable(train.shape[1], 8))
    model.prepare(train)
    sampler, batch = link_batch(train, [-1, -1])
    loss = model.subgraph_loss(batch, propagation_for(sampler))
    loss.backward()
    grad_sub = model.item_image_encoder.table.weight.grad.clone()
    assert grad_sub.abs().sum() > 0
    triples = next(iter(sampler.triples.loader(epoch=0)))
    model.zero_grad()
    reference = model.recommendation_loss(triples.users, triples.pos_items, triples.neg_items)
    reference.backward()
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_sub, model.item_image_encoder.table.weight.grad, rtol=1e-4, atol=1e-6)


def test_subgraph_degrees_are_not_the_full_graph_operator():
    # Why the default keeps full-graph degrees: subgraph degrees differ at the last hop even
    # when every neighbour is taken, so the seeds' values change.
    train = random_interactions(seed=3)
    torch.manual_seed(0)
    model = LightGCN(*train.shape, embedding_dim=8, num_layers=2)
    model.prepare(train)
    sampler, batch = link_batch(train, [-1, -1], batch_size=2)
    users, items = model()
    full = torch.cat([users, items])[batch.n_id[: batch.batch_size]]
    sub = model.subgraph_embeddings(batch, propagation_for(sampler, "subgraph"))
    assert not torch.allclose(sub, full, atol=1e-4)


def test_unbiased_weights_estimate_the_full_operator():
    # One layer: E[(d_v / s_v) sum_{u in S(v)} x_u / sqrt(d_u d_v)] = (A_hat x)_v exactly; check by Monte Carlo.
    train = random_interactions(num_users=4, num_items=5, density=0.8, seed=1)
    csr = CSRGraph.from_scipy(sp.bmat([[None, train], [train.T, None]], format="csr"))
    degree = np.diff(csr.indptr)
    x = torch.randn(csr.num_targets, 4, generator=torch.Generator().manual_seed(0))
    estimators = {name: SubgraphPropagation(degree, normalization=name) for name in ("unbiased", "full")}
    a_hat = sp.diags(degree ** -0.5) @ sp.csr_matrix((np.ones_like(csr.indices, dtype=np.float64), csr.indices,
                                                      csr.indptr)) @ sp.diags(degree ** -0.5)
    exact = torch.from_numpy(a_hat @ x.double().numpy()).float()
    sampler = NeighborSampler(csr, [2], seed=5)
    totals = {name: torch.zeros_like(exact) for name in estimators}
    draws = 400
    for number in range(draws):
        batch = sampler.sample(np.arange(csr.num_targets), batch_seed=number)
        for name, propagation in estimators.items():
            totals[name] += propagation.layers(x[batch.n_id], batch, 1)[1][batch.input_index]
    error = {name: float((total / draws - exact).norm() / exact.norm()) for name, total in totals.items()}
    # Monte-Carlo error of 400 draws: 0.13 here (0.03 at 3000 draws); without the d/s rescaling
    # the sum over 2 of 3-5 neighbours is biased by ~45%.
    assert error["unbiased"] < 0.2 and error["full"] > 0.35, error


def test_sampled_batches_and_losses_are_deterministic():
    train = random_interactions(num_users=30, num_items=40, density=0.2, seed=2)
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = LightGCN(*train.shape, embedding_dim=8, num_layers=2)
        sampler = LinkNeighborSampler(train, [3, 2], batch_size=16, seed=7)
        propagation = propagation_for(sampler)
        losses.append([float(model.subgraph_loss(b, propagation).detach()) for b in sampler.loader(epoch=1)])
    assert losses[0] == losses[1]
    # A different seed draws other neighbourhoods.
    sampler = LinkNeighborSampler(train, [3, 2], batch_size=16, seed=8)
    torch.manual_seed(0)
    model = LightGCN(*train.shape, embedding_dim=8, num_layers=2)
    other = [float(model.subgraph_loss(b, propagation_for(sampler)).detach()) for b in sampler.loader(epoch=1)]
    assert other != losses[0]


def _sections(settings):
    """``mode=..., epochs=...`` -> ``{"sampling.mode": ..., "train.epochs": ...}``."""
    sampling = {f.name for f in dataclasses.fields(SamplingConfig)}
    return {f"{'sampling' if k in sampling else 'train'}.{k}": v for k, v in settings.items()}


def _fit_recommender(graph, **train_settings):
    overrides = {"train.epochs": 2, "train.batch_size": 16, "train.eval_every": 1, "train.seed": 3,
                 "model.embedding_dim": 8, "model.num_layers": 2, **_sections(train_settings)}
    config = build_run_config("lightgcn", "gowalla", overrides=overrides)
    trainer, summary = runs.fit(config, None, data=graph)
    return trainer, summary


def test_trainer_sampled_mode_with_every_neighbour_matches_full_mode():
    graph = InteractionGraph.from_scipy(random_interactions(num_users=25, num_items=30, density=0.2, seed=4),
                                        seed=0)
    full_trainer, full = _fit_recommender(graph)
    sampled_trainer, sampled = _fit_recommender(graph, mode="sampled")
    assert isinstance(sampled_trainer.task, SampledRecommendationTask)
    assert sampled["mode"] == "sampled" and sampled["fanouts"] == [-1, -1]
    for a, b in zip(full_trainer.history, sampled_trainer.history):
        if a["split"] == "train":
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    torch.testing.assert_close(full_trainer.model.embedding.weight, sampled_trainer.model.embedding.weight,
                               rtol=1e-4, atol=1e-6)
    # Sampled neighbourhoods: trains, differs, and is reproducible.
    _, first = _fit_recommender(graph, mode="sampled", fanouts=[2, 2])
    _, second = _fit_recommender(graph, mode="sampled", fanouts=[2, 2])
    assert first["results"] == second["results"]


def test_sampled_mode_configuration_errors():
    graph = InteractionGraph.from_scipy(random_interactions(), seed=0)
    with pytest.raises(ValueError, match="one fan-out per layer"):
        _fit_recommender(graph, mode="sampled", fanouts=[5])
    with pytest.raises(ValueError, match="mode must be"):
        SamplingConfig(mode="sampeld")
    with pytest.raises(ConfigError):
        build_run_config("lightgcn", "gowalla", overrides={"sampling.fanouts": "many"})
    task = SampledRecommendationTask(graph, TrainConfig(), SamplingConfig(mode="sampled"))
    with pytest.raises(ValueError, match="UltraGCN has no propagation"):
        task.build_model(get_model_entry("ultragcn"), get_model_entry("ultragcn").config_cls())


# ----------------------------------------------------------------- CatGCN (node classification)
def tiny_categorical(num_nodes=40, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, (num_nodes, 3))
    pairs = rng.integers(0, num_nodes, (2, 3 * num_nodes))
    y = (codes[:, 0] + codes[:, 1]) % 3
    return categorical_graph(codes, pairs, y, name="tiny")


def _catgcn_tasks(graph, **settings):
    config = build_run_config("catgcn", "catgcn-synthetic", overrides={
        "model.embedding_dim": 8, "model.num_hops": 3, "model.dropout": 0.0, "train.batch_size": 4096,
        "train.seed": 1, **_sections(settings)})
    full_config = build_run_config("catgcn", "catgcn-synthetic", overrides={
        "model.embedding_dim": 8, "model.num_hops": 3, "model.dropout": 0.0, "train.seed": 1})
    return config, full_config


def test_catgcn_sampled_loss_and_gradients_equal_full_batch():
    graph = tiny_categorical()
    config, _ = _catgcn_tasks(graph, mode="sampled")
    entry = get_model_entry("catgcn")
    sampled_task = SampledNodeClassificationTask(graph, config.train)
    full_task = NodeClassificationTask(graph, config.train)
    torch.manual_seed(0)
    model = sampled_task.build_model(entry, config.model_config)
    (batch,) = list(sampled_task.train_batches(epoch=0))        # every train node in one batch
    assert batch.batch_size == int(full_task.masks["train"].sum())
    model.zero_grad()
    loss = sampled_task.training_loss(model, batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    reference = full_task.training_loss(model, full_task.graph)
    reference.backward()
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(grads[name], parameter.grad, rtol=1e-4, atol=1e-6, msg=name)
    # The seeds' logits equal the full graph's.
    full_logits = full_task.logits(model)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(sampled_task.batch_logits(model, batch),
                                   full_logits[batch.n_id[: batch.batch_size]], rtol=1e-5, atol=1e-6)


def test_catgcn_trainer_sampled_mode_matches_full_batch_and_is_deterministic():
    graph = tiny_categorical(seed=2)
    config, full_config = _catgcn_tasks(graph, mode="sampled", epochs=5, patience=0)
    full_config.train.epochs, full_config.train.patience = 5, 0
    full_trainer, full = runs.fit(full_config, None, data=graph)
    sampled_trainer, sampled = runs.fit(config, None, data=graph)
    assert isinstance(sampled_trainer.task, SampledNodeClassificationTask)
    for name, parameter in full_trainer.model.named_parameters():
        torch.testing.assert_close(parameter, dict(sampled_trainer.model.named_parameters())[name],
                                   rtol=1e-4, atol=1e-5, msg=name)
    assert full["results"]["test"]["accuracy"] == sampled["results"]["test"]["accuracy"]
    # Minibatches of sampled neighbourhoods (dropout on): reproducible run to run.
    small, _ = _catgcn_tasks(graph, mode="sampled", epochs=3, patience=0, batch_size=8, fanouts=[2, 2, 2])
    small.model_config.dropout = 0.3
    _, first = runs.fit(small, None, data=graph)
    _, second = runs.fit(small, None, data=graph)
    assert first["results"] == second["results"]
    assert first["batch_size"] == 8 and first["fanouts"] == [2, 2, 2]


def test_sampled_node_classification_refuses_coupled_models():
    graph = tiny_categorical()
    config = TrainConfig(split="stratified", normalize_features=False)
    task = SampledNodeClassificationTask(graph, config, SamplingConfig(mode="sampled"))
    with pytest.raises(ValueError, match="use sampling.mode=full"):
        task.build_model(get_model_entry("gcn"), get_model_entry("gcn").config_cls())


def test_unsorted_edges_take_the_index_add_path_with_the_same_result():
    train = random_interactions(seed=5)
    torch.manual_seed(0)
    model = LightGCN(*train.shape, embedding_dim=8, num_layers=2)
    sampler, batch = link_batch(train, [3, 2])
    propagation = propagation_for(sampler)
    expected = model.subgraph_embeddings(batch, propagation)
    # Shuffle the edges within each hop: the hop prefixes stay, the CSR order (sorted targets) goes.
    order, begin = [], 0
    for count in batch.num_sampled_edges:
        order.append(begin + torch.randperm(count, generator=torch.Generator().manual_seed(count)))
        begin += count
    order = torch.cat(order)
    shuffled = batch.clone()
    shuffled.edge_index = batch.edge_index[:, order]
    assert not bool((shuffled.edge_index[1][1:] >= shuffled.edge_index[1][:-1]).all())
    torch.testing.assert_close(model.subgraph_embeddings(shuffled, propagation), expected,
                               rtol=1e-5, atol=1e-6)


def test_sparse_adam_moves_only_the_batch_rows_and_its_first_step_is_adams():
    # Sampled mode's per-step cost must not include the whole table: with train.optimizer=sparse_adam the
    # layer-0 rows give sparse gradients and only the batch's rows change.
    from graphrec.train.trainer import make_optimizer

    train = random_interactions(num_users=25, num_items=30, density=0.2, seed=4)
    sampler = LinkNeighborSampler(train, [2, 2], batch_size=4, num_negatives=1, seed=0)
    batch = next(iter(sampler.loader(epoch=0)))
    propagation = propagation_for(sampler)
    weights = {}
    for optimizer in ("adam", "sparse_adam"):
        torch.manual_seed(0)
        model = LightGCN(*train.shape, embedding_dim=8, num_layers=2)
        model.sparse_gradients = optimizer == "sparse_adam"
        before = model.embedding.weight.detach().clone()
        if optimizer == "sparse_adam":
            step = make_optimizer(model, TrainConfig(optimizer=optimizer, lr=0.01))
            assert isinstance(step, torch.optim.SparseAdam)
        else:   # torch's SparseAdam adds eps before the second moment's bias correction: eps / sqrt(1 - beta2)
            step = torch.optim.Adam(model.parameters(), lr=0.01, eps=1e-8 / (1 - 0.999) ** 0.5)
        model.subgraph_loss(batch, propagation).backward()
        assert model.embedding.weight.grad.is_sparse == (optimizer == "sparse_adam")
        step.step()
        weights[optimizer] = model.embedding.weight.detach()
        moved = (weights[optimizer] != before).any(1).nonzero().flatten()
        assert set(moved.tolist()) <= set(batch.n_id.tolist())
    torch.testing.assert_close(weights["sparse_adam"], weights["adam"], rtol=1e-5, atol=1e-7)


def test_sparse_adam_is_refused_where_every_row_gets_a_gradient():
    graph = InteractionGraph.from_scipy(random_interactions(), seed=0)
    with pytest.raises(ValueError, match="sparse_adam needs sampling.mode=sampled"):
        _fit_recommender(graph, optimizer="sparse_adam")
    with pytest.raises(ValueError, match="no weight decay"):
        _fit_recommender(graph, mode="sampled", optimizer="sparse_adam", weight_decay=1e-4)
    _, summary = _fit_recommender(graph, mode="sampled", optimizer="sparse_adam", fanouts=[2, 2])
    assert summary["status"] == "completed"


def test_training_a_large_graph_recommends_the_linear_path(monkeypatch):
    import warnings

    from graphrec.train import recommendation

    graph = InteractionGraph.from_scipy(random_interactions(), seed=0)
    monkeypatch.setattr(recommendation, "FULL_GRAPH_ADVICE_ABOVE", graph.train.nnz - 1)
    with pytest.warns(UserWarning, match="square of the data.*sampling.history_refreshes=4"):
        _fit_recommender(graph)
    with pytest.warns(UserWarning, match="stops overlapping.*sampling.history_refreshes=4"):
        _fit_recommender(graph, mode="sampled")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _fit_recommender(graph, mode="sampled", fanouts=[5], history_refreshes=2)
        monkeypatch.setattr(recommendation, "FULL_GRAPH_ADVICE_ABOVE", graph.train.nnz)
        _fit_recommender(graph)


# ----------------------------------------------------------------- historical layers (sampling.history_refreshes)
def test_historical_layers_with_every_neighbour_give_the_full_graph_forward():
    """Right after a refresh, one sampled hop with every neighbour plus the historical layers 2..K
    is the full-graph forward; the gradient is the full-graph one without the paths through layers 2..K."""
    train = random_interactions()
    torch.manual_seed(0)
    model = LightGCN(*train.shape, embedding_dim=8, num_layers=3)
    model.prepare(train)
    sampler, batch = link_batch(train, [-1])
    propagation = propagation_for(sampler)
    deep = model.deep_layer_sum(2)
    seeds = batch.n_id[: batch.batch_size]
    users, items = model()
    full = torch.cat([users, items])
    torch.testing.assert_close(propagation.layer_mean(model.initial_representation(batch.n_id), batch, 3, deep[seeds]),
                               full[seeds], rtol=1e-5, atol=1e-6)

    model.zero_grad()
    model.subgraph_loss(batch, propagation, deep[seeds]).backward()
    ours = model.embedding.weight.grad.clone()
    # Reference: the dense loss in which layers 2..3 are constants.
    weight = model.embedding.weight
    dense = _dense_normalized(train)
    layer1 = dense @ weight
    final = (weight + layer1 + deep) / 4
    triples = next(iter(sampler.triples.loader(epoch=0)))
    u, i, j = triples.users, triples.pos_items + train.shape[0], triples.neg_items.reshape(-1) + train.shape[0]
    from graphrec.nn import bpr_loss
    model.zero_grad()
    bpr_loss(final[u], final[i], final[j], weight[torch.cat([u, i, j])], model.reg_weight).backward()
    torch.testing.assert_close(ours, model.embedding.weight.grad, rtol=1e-4, atol=1e-6)


def _dense_normalized(train):
    """``D^-1/2 A D^-1/2`` of the bipartite graph, dense (users then items)."""
    u, i = train.shape
    a = np.zeros((u + i, u + i), dtype=np.float32)
    a[:u, u:] = train.toarray()
    a[u:, :u] = train.toarray().T
    d = a.sum(1)
    inv = np.where(d > 0, d ** -0.5, 0)
    return torch.as_tensor(inv[:, None] * a * inv[None, :])


def test_deep_layer_sum_is_the_sum_of_full_graph_layers():
    train = random_interactions()
    torch.manual_seed(1)
    model = LightGCN(*train.shape, embedding_dim=4, num_layers=3)
    model.prepare(train)
    a, x = _dense_normalized(train), model.embedding.weight.detach()
    torch.testing.assert_close(model.deep_layer_sum(2), a @ a @ x + a @ a @ a @ x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.deep_layer_sum(3), a @ a @ a @ x, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="first_layer"):
        model.deep_layer_sum(0)


def test_history_is_refreshed_the_configured_times_per_epoch():
    graph = InteractionGraph.from_scipy(random_interactions(num_users=25, num_items=30, density=0.2, seed=4), seed=0)
    config = TrainConfig(batch_size=8, epochs=1)
    task = SampledRecommendationTask(graph, config, SamplingConfig(mode="sampled", fanouts=(3,), history_refreshes=2))
    entry = get_model_entry("lightgcn")
    model = task.build_model(entry, entry.config_cls(embedding_dim=4, num_layers=3))
    refreshes = []
    original = model.deep_layer_sum
    model.deep_layer_sum = lambda first: refreshes.append(first) or original(first)
    batches = list(task.train_batches(0))
    refreshes.clear()
    for batch in task.train_batches(0):
        task.training_loss(model, batch)
    assert task.history_interval() == -(-len(batches) // 2) and len(batches) >= 3
    assert refreshes == [2, 2]  # layers 2..3 from history, at batch 0 and half-way
    assert task.describe()["history_refreshes_per_epoch"] == 2


def test_history_configuration_errors():
    graph = InteractionGraph.from_scipy(random_interactions(), seed=0)
    with pytest.raises(ValueError, match="fewer fan-outs"):
        _fit_recommender(graph, mode="sampled", fanouts=[5, 5], history_refreshes=1)
    with pytest.raises(ValueError, match="needs sampling.mode=sampled"):
        SamplingConfig(history_refreshes=2)
    with pytest.raises(ValueError, match=">= 0"):
        SamplingConfig(mode="sampled", history_refreshes=-1)


def _history_trainer(run_dir, graph):
    from graphrec.train.trainer import Trainer

    config = TrainConfig(batch_size=8, epochs=2, eval_every=1, seed=3, optimizer="sparse_adam", weight_decay=0.0)
    task = SampledRecommendationTask(graph, config, SamplingConfig(mode="sampled", fanouts=(3,), history_refreshes=2))
    torch.manual_seed(0)
    entry = get_model_entry("lightgcn")
    model = task.build_model(entry, entry.config_cls(embedding_dim=8, num_layers=3))
    return Trainer(model, task, config, run_dir=run_dir, verbose=False)


def test_history_training_resumes_exactly_between_refreshes(tmp_path, stop_at_batch):
    graph = InteractionGraph.from_scipy(random_interactions(num_users=25, num_items=30, density=0.2, seed=4), seed=0)
    reference = _history_trainer(tmp_path / "a", graph)
    reference.fit()
    interrupted = _history_trainer(tmp_path / "b", graph)
    per_epoch, every = interrupted.task.num_batches(), interrupted.task.history_interval()
    assert every >= 2  # the stop below falls between two refreshes
    stop_at_batch(interrupted, per_epoch + 2)
    assert interrupted.fit()["status"] == "interrupted"
    assert "history" in load_checkpoint(tmp_path / "b" / "last.pt")["task_state"]
    resumed = _history_trainer(tmp_path / "b", graph)
    resumed.resume()
    resumed.fit()
    torch.testing.assert_close(resumed.model.embedding.weight, reference.model.embedding.weight, rtol=0, atol=0)
