"""LATTE: attention normalisation, meta-path composition, the layer against a dense reference,
sampled == full with every neighbour, the Trainer path, explain; ACM end to end (data)."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import HeteroData

from graphrec.models import latte as latte_module
from graphrec.models.latte import LATTE, LATTEConv, aggregate
from graphrec.models.metapath import compose_edge_index, extend_metapaths, metapath_edge_index, metapath_name

PA, AP = ("paper", "to", "author"), ("author", "to", "paper")
PS, SP = ("paper", "to", "subject"), ("subject", "to", "paper")


def tiny_graph(seed: int = 0) -> HeteroData:
    """4 papers (features), 3 authors (features), 2 subjects (none); labels on papers.

    paper-author: p0-a0, p0-a1, p1-a1, p2-a2, p3-a2;  paper-subject: p0-s0, p1-s0, p2-s1, p3-s1.
    """
    g = torch.Generator().manual_seed(seed)
    data = HeteroData()
    data["paper"].x = torch.rand(4, 5, generator=g)
    data["author"].x = torch.rand(3, 5, generator=g)
    data["subject"].num_nodes = 2
    data["paper"].y = torch.tensor([0, 0, 1, 1])
    pa = torch.tensor([[0, 0, 1, 2, 3], [0, 1, 1, 2, 2]])
    ps = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    data[PA].edge_index, data[AP].edge_index = pa, pa.flip(0)
    data[PS].edge_index, data[SP].edge_index = ps, ps.flip(0)
    return data


def graph_inputs(data):
    return ({t: data[t].x for t in data.node_types if "x" in data[t]},
            {et: data[et].edge_index for et in data.edge_types},
            {t: torch.arange(data[t].num_nodes) for t in data.node_types})


def small_latte(data, **kwargs):
    torch.manual_seed(0)
    sizes = {t: data[t].num_nodes for t in data.node_types}
    channels = {t: (data[t].x.shape[1] if "x" in data[t] else 0) for t in data.node_types}
    return LATTE(data.metadata(), channels, sizes, num_classes=2, target="paper",
                 **{"embedding_dim": 8, "heads": 2, **kwargs})


# ------------------------------------------------------------------ meta-paths
def test_metapath_names_and_second_order_paths():
    base = [PA, AP, PS, SP]
    second = extend_metapaths([(et,) for et in base], base)
    names = sorted(metapath_name(p) for p in second)
    assert names == sorted(["paper-author-paper", "paper-subject-paper", "author-paper-author",
                            "author-paper-subject", "subject-paper-author", "subject-paper-subject"])
    third = extend_metapaths(second, base)
    assert "paper-author-paper-subject" in {metapath_name(p) for p in third}
    assert all(len(p) == 3 for p in third)


def test_composition_is_the_boolean_adjacency_product_by_hand():
    data = tiny_graph()
    sizes = {t: data[t].num_nodes for t in data.node_types}
    edges = {et: data[et].edge_index for et in data.edge_types}
    # paper-author-paper: papers sharing an author (self included): p0-{p0,p1}, p1-{p0,p1}, p2-{p2,p3}, p3-{p2,p3}
    pap = metapath_edge_index((PA, AP), edges, sizes)
    expected = {(0, 0), (1, 0), (0, 1), (1, 1), (2, 2), (3, 2), (2, 3), (3, 3)}   # (source, target)
    assert set(map(tuple, pap.t().tolist())) == expected
    assert torch.equal(pap[1], pap[1].sort().values)       # sorted by target
    # subject-paper-author: author a aggregates from the subjects of its papers: a0<-s0, a1<-s0, a2<-s1
    spa = metapath_edge_index((SP, PA), edges, sizes)
    assert set(map(tuple, spa.t().tolist())) == {(0, 0), (0, 1), (1, 2)}
    # a dense reference of the same product
    a_pa = torch.zeros(4, 3)
    a_pa[data[PA].edge_index[0], data[PA].edge_index[1]] = 1
    dense = ((a_pa @ a_pa.t()) > 0).nonzero()               # [paper_source, paper_target]
    assert set(map(tuple, dense.tolist())) == expected
    # composing the second layer from the first one's graphs gives the same edges as from scratch
    model = small_latte(data)
    layers = model.metapath_edges(edges, sizes)
    assert len(layers) == 2 and len(layers[0]) == 4 and len(layers[1]) == 6
    for path, edge_index in layers[1].items():
        assert torch.equal(edge_index, metapath_edge_index(path, edges, sizes))


# ------------------------------------------------------------------ the layer
def dense_reference(conv: LATTEConv, h, edges):
    """LATTEConv's equations node by node, with Python loops (eval mode: no dropout)."""
    out, beta_ref = {}, {}
    for t in conv.node_types:
        left = conv.lin_l[t](h[t]).view(-1, conv.heads, conv.head_dim)
        beta = torch.softmax(conv.relation_score[t](h[t]), dim=-1)
        beta_ref[t] = beta
        rows = []
        for i in range(h[t].shape[0]):
            total = beta[i, -1] * left[i].reshape(-1)
            for slot, k in enumerate(conv.relations_of(t)):
                path = conv.metapaths[k]
                s = path[0][0]
                right = conv.lin_r[s](h[s]).view(-1, conv.heads, conv.head_dim)
                edge_index = edges[path]
                neighbours = edge_index[0][edge_index[1] == i]
                if neighbours.numel() == 0:
                    continue
                message = torch.zeros(conv.heads, conv.head_dim)
                for head in range(conv.heads):
                    e = torch.stack([conv.sharpening[k] * F.leaky_relu(
                        (left[i, head] * conv.attn_l[k, head]).sum() + (right[j, head] * conv.attn_r[k, head]).sum(),
                        0.2) for j in neighbours])
                    a = torch.exp(e) / torch.exp(e).sum()
                    message[head] = (a.unsqueeze(-1) * right[neighbours, head]).sum(0)
                total = total + beta[i, slot] * message.reshape(-1)
            rows.append(torch.relu(total))
        out[t] = torch.stack(rows)
    return out, beta_ref


def test_layer_matches_dense_reference_and_attention_is_normalised():
    data = tiny_graph()
    model = small_latte(data).eval()
    sizes = {t: data[t].num_nodes for t in data.node_types}
    x_dict, edges, n_id = graph_inputs(data)
    with torch.no_grad():
        for conv in model.layers:         # non-trivial sharpening scales
            conv.sharpening.uniform_(0.5, 2.0)
        h = model.initial_embeddings(x_dict, n_id)
        for conv, layer_edges in zip(model.layers, model.metapath_edges(edges, sizes)):
            out, beta, alpha = conv(h, layer_edges)
            ref, beta_ref = dense_reference(conv, h, layer_edges)
            for t in conv.node_types:
                torch.testing.assert_close(out[t], ref[t], rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(beta[t].sum(-1), torch.ones(sizes[t]))
                assert beta[t].shape[1] == len(conv.relations_of(t)) + 1
            for path, a in alpha.items():
                target = layer_edges[path][1]
                sums = torch.zeros(sizes[path[-1][2]], conv.heads).index_add(0, target, a)
                reached = torch.bincount(target, minlength=sizes[path[-1][2]]) > 0
                torch.testing.assert_close(sums[reached], torch.ones(int(reached.sum()), conv.heads))
            h = out


def test_sparse_aggregation_equals_gathered_messages(monkeypatch):
    torch.manual_seed(0)
    edge_index = torch.unique(torch.stack([torch.randint(0, 7, (40,)), torch.randint(0, 5, (40,))]), dim=1)
    edge_index = edge_index[:, torch.randperm(edge_index.shape[1])]       # unique pairs, unsorted targets
    alpha = torch.rand(edge_index.shape[1], 2, requires_grad=True)
    source = torch.randn(7, 2, 3, requires_grad=True)
    gathered = aggregate(alpha, source, edge_index, 5)
    grads = torch.autograd.grad(gathered.square().sum(), (alpha, source))
    monkeypatch.setattr(latte_module, "GATHER_LIMIT", 0)        # force the CSR path (unsorted targets)
    sparse = aggregate(alpha, source, edge_index, 5)
    torch.testing.assert_close(sparse, gathered)
    for a, b in zip(torch.autograd.grad(sparse.square().sum(), (alpha, source)), grads):
        torch.testing.assert_close(a, b)


def test_model_forward_embeddings_relation_weights_and_proximity():
    data = tiny_graph()
    x_dict, edges, n_id = graph_inputs(data)
    model = small_latte(data, num_layers=2, use_proximity=True)
    assert set(model.embedding) == {"subject"} and set(model.projection) == {"paper", "author"}
    logits, auxiliary_loss = model.forward_with_aux(x_dict, edges, n_id)
    assert logits.shape == (4, 2)
    assert auxiliary_loss is not None and float(auxiliary_loss) > 0
    (F.cross_entropy(logits, data["paper"].y) + auxiliary_loss).backward()
    assert model.layers[0].sharpening.grad is not None and model.embedding["subject"].weight.grad is not None
    model.eval()
    _, auxiliary_loss = model.forward_with_aux(x_dict, edges, n_id)
    assert auxiliary_loss is None            # only in training
    weights = model.relation_weights()
    assert len(weights) == 2
    assert list(weights[1]["paper"]) == ["paper-author-paper", "paper-subject-paper", "paper"]
    for layer in weights:
        for relations in layer.values():
            torch.testing.assert_close(torch.stack(list(relations.values()), 1).sum(1), torch.ones(
                next(iter(relations.values())).shape[0]))
    assert model.embed(x_dict, edges, n_id)["paper"].shape == (4, 16)   # layers concatenated


# ------------------------------------------------------------------ task, sampled mode, Trainer
def labelled_graph(num_papers: int = 60, seed: int = 0) -> HeteroData:
    """A random typed graph whose paper labels follow their subject (so the task is learnable)."""
    g = torch.Generator().manual_seed(seed)
    data = HeteroData()
    subjects = torch.randint(0, 4, (num_papers,), generator=g)
    data["paper"].y = subjects % 2
    data["paper"].x = torch.rand(num_papers, 6, generator=g) + 0.5 * F.one_hot(data["paper"].y, 6).float()
    data["author"].num_nodes = 20
    data["subject"].num_nodes = 4
    pa = torch.stack([torch.arange(num_papers).repeat(2), torch.randint(0, 20, (2 * num_papers,), generator=g)])
    pa = torch.unique(pa, dim=1)
    ps = torch.stack([torch.arange(num_papers), subjects])
    data[PA].edge_index, data[AP].edge_index = pa, pa.flip(0)
    data[PS].edge_index, data[SP].edge_index = ps, ps.flip(0)
    order = torch.randperm(num_papers, generator=g)
    for count, train in ((4, order[:8]),):
        for name, index in (("train", train), ("val", order[20:40]), ("test", order[40:])):
            mask = torch.zeros(num_papers, dtype=torch.bool)
            mask[index] = True
            data["paper"][f"{name}_mask_{count}"] = mask
    data.target_node_type, data.label_splits, data.name = "paper", (4,), "toy"
    return data


def make_task(data, mode="full", fanouts=(), **train):
    from graphrec.config import SamplingConfig, TrainConfig
    from graphrec.train.hetero_classification import HeteroNodeClassificationTask

    return HeteroNodeClassificationTask(data, TrainConfig(normalize_features=False, **train),
                                        SamplingConfig(mode=mode, fanouts=tuple(fanouts)))


def test_sampled_batches_with_all_neighbours_give_the_full_graph_logits():
    """3 hops of every neighbour cover everything a 2-layer LATTE needs for its seeds."""
    from graphrec.models import get_model_entry, LATTEConfig

    data = labelled_graph()
    full = make_task(data)
    sampled = make_task(data, mode="sampled", fanouts=(-1, -1, -1), batch_size=5)
    torch.manual_seed(0)
    model = full.build_model(get_model_entry("latte"), LATTEConfig(embedding_dim=8)).eval()
    with torch.no_grad():
        reference = model(full.graph.x_dict, full.graph.edge_index_dict, full.graph.n_id_dict)
        assert sampled.num_batches() == 2
        seen = 0
        for batch in sampled.train_batches(epoch=0):
            logits = model(batch.x_dict, batch.edge_index_dict, batch.n_id_dict)
            seeds = batch.n_id_dict["paper"][batch.mask]
            torch.testing.assert_close(logits[batch.mask], reference[seeds], rtol=1e-5, atol=1e-5)
            assert bool(full.masks["train"][seeds].all())
            seen += int(batch.mask.sum())
        assert seen == int(full.masks["train"].sum())
        valid_logits, valid_y = sampled.predict(model, "valid")
        rows = full.masks["valid"].nonzero().view(-1)
        torch.testing.assert_close(valid_logits, reference[rows], rtol=1e-5, atol=1e-5)
        assert torch.equal(valid_y, full.y[rows])


def test_split_choice_and_errors():
    data = labelled_graph()
    assert make_task(data, split="public").split == "4"
    assert int(make_task(data, split="4").masks["train"].sum()) == 8
    with pytest.raises(ValueError, match="not shipped"):
        make_task(data, split="20")
    with pytest.raises(ValueError, match="fanouts"):
        make_task(data, mode="sampled")
    stratified = make_task(data, split="stratified", seed=3)
    assert int(stratified.masks["train"].sum()) > 0


@pytest.mark.parametrize("model_name, mode", [("latte", "full"), ("latte", "sampled"), ("han", "full"),
                                              ("han", "sampled"), ("hgt", "sampled")])
def test_every_hetero_model_trains_through_the_trainer(model_name, mode, tmp_path):
    from graphrec import runs
    from graphrec.config import build_run_config

    overrides = {"train.epochs": 2, "train.split": "4", "train.num_threads": 1}
    if model_name == "latte":
        overrides["model.embedding_dim"] = 16
        overrides["model.use_proximity"] = True
    if mode == "sampled":
        overrides.update({"sampling.mode": "sampled", "sampling.fanouts": [5, 5], "train.batch_size": 4})
    config = build_run_config(model_name, "acm", overrides=overrides)
    trainer, summary = runs.fit(config, tmp_path / "run", data=labelled_graph())
    assert summary["status"] in ("completed", "early_stopped")
    assert summary["mode"] == mode and summary["split"] == "4"
    for split in ("valid", "test"):
        assert {"loss", "accuracy", "macro_f1", "micro_f1"} <= set(summary["results"][split])
    assert (tmp_path / "run" / "best.pt").exists()


def test_relation_weights_table_and_plot(tmp_path):
    from graphrec.explain import format_relation_weights, plot_relation_weights, relation_weights

    data = labelled_graph()
    task = make_task(data)
    from graphrec.models import get_model_entry, LATTEConfig

    model = task.build_model(get_model_entry("latte"), LATTEConfig(embedding_dim=8))
    weights = relation_weights(model, task.graph)
    assert len(weights) == 2 and set(weights[0]) == {"paper", "author", "subject"}
    for layer in weights:
        for relations in layer.values():
            assert abs(sum(s["mean"] for s in relations.values()) - 1.0) < 1e-5
    text = format_relation_weights(weights)
    assert "paper-subject-paper" in text and "paper (self)" in text
    png = plot_relation_weights(weights, tmp_path / "betas.png")
    assert png.stat().st_size > 1000
    with pytest.raises(ValueError, match="no relation weights"):
        relation_weights(torch.nn.Linear(2, 2), task.graph)


# ------------------------------------------------------------------ real data
@pytest.mark.data
def test_acm_latte_sampled_learns_and_explain_cli(data_root, tmp_path, capsys):
    from graphrec import cli, runs
    from graphrec.config import build_run_config

    overrides = {"train.epochs": 12, "train.split": "20", "train.num_threads": 1, "sampling.mode": "sampled",
                 "sampling.fanouts": [10, 10], "train.seed": 2020}
    config = build_run_config("latte", "acm", str(data_root), overrides=overrides)
    _, summary = runs.fit(config, tmp_path / "run")
    assert summary["data"]["train"] == 60 and summary["data"]["valid"] == 1000
    assert summary["results"]["test"]["micro_f1"] > 0.65           # 3 classes, 49.6% majority (86% at epoch 23)
    code = cli.main(["explain", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--data-dir", str(data_root),
                     "--plot", str(tmp_path / "betas.png"), "--json", str(tmp_path / "betas.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "paper-subject-paper" in out and "author-paper-subject" in out
    weights = json.loads((tmp_path / "betas.json").read_text())
    assert abs(sum(s["mean"] for s in weights[1]["paper"].values()) - 1) < 1e-4
    assert (tmp_path / "betas.png").stat().st_size > 1000


# ------------------------------------------------------------------ official optimizer groups and edge filtering
def test_parameter_groups_exclude_biases_sharpening_and_embeddings_from_weight_decay():
    from graphrec.config import TrainConfig
    from graphrec.train.trainer import make_optimizer

    model = small_latte(tiny_graph())   # the default: the official groups
    decay, no_decay = model.parameter_groups(0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert "embedding.subject.weight" in skipped and "layers.1.sharpening" in skipped
    assert "classifier.bias" in skipped and "layers.0.lin_l.paper.bias" in skipped
    assert not any(n.endswith("weight") and not n.startswith("embedding.") for n in skipped)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    optimizer = make_optimizer(model, TrainConfig(lr=1e-3, weight_decay=0.01))   # the Trainer uses them
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]
    plain = small_latte(tiny_graph(), official_parameter_groups=False).parameter_groups(0.01)
    assert len(plain) == 1 and plain[0]["weight_decay"] == 0.01


def test_edge_threshold_composes_from_the_previous_layers_attended_edges():
    data = tiny_graph()
    x, ei, nid = graph_inputs(data)
    structural = small_latte(data).eval()
    num_nodes = {t: data[t].num_nodes for t in data.node_types}
    full = structural.metapath_edges({tuple(k): v for k, v in ei.items()}, num_nodes)
    # threshold 0 keeps every edge: same edges (and logits) as structural composition
    zero = small_latte(data, edge_threshold=1e-12).eval()
    assert torch.allclose(zero(x, ei, nid), structural(x, ei, nid), atol=1e-6)
    # threshold 1: only edges with attention 1 (a target's single neighbour) or each path's top edge
    model = small_latte(data, edge_threshold=1.0).eval()
    h = model.initial_embeddings(x, nid)
    _, _, alpha = model.layers[0](h, full[0])
    filtered = model.filtered_edges(1, {tuple(k): v for k, v in ei.items()}, num_nodes, full[0], alpha)
    pap = next(p for p in model.metapaths[1] if metapath_name(p) == "paper-author-paper")
    psp = next(p for p in model.metapaths[1] if metapath_name(p) == "paper-subject-paper")
    # every paper has one subject (attention 1): paper-subject-paper is unchanged
    assert torch.equal(filtered[psp], full[1][psp])
    # author a1 has papers p0, p1 (attention < 1 each unless one is the top edge); p0 has authors a0, a1
    assert filtered[pap].shape[1] < full[1][pap].shape[1]
    kept = {tuple(e) for e in filtered[pap].t().tolist()}
    assert kept <= {tuple(e) for e in full[1][pap].t().tolist()}
    model(x, ei, nid)   # the whole forward runs with filtering
    with pytest.raises(ValueError, match="edge_threshold"):
        latte_module.LATTEConfig(edge_threshold=1.5)
