"""Every registered model against its written contract (:mod:`graphrec.models.interfaces`), timm-style:
it meets its role's Protocol and declares exactly its capabilities, a forward/backward runs on a tiny
graph through its task, its state dict round-trips through ``torch.load(weights_only=True)``, and its
config dataclass defaults are its constructor defaults."""
from __future__ import annotations

import dataclasses
import inspect
import io

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch_geometric.data import Data, HeteroData

from graphrec.config import SamplingConfig, TrainConfig
from graphrec.models import available_models, get_model_entry
from graphrec.models.interfaces import (ROLE_PROTOCOLS, CategoricalFieldInput, DecoupledNodeClassifier,
                                        DecoupledPropagation, HeteroNodeClassifier, ItemImageSupport, LayerwiseModel,
                                        NodeClassifier, OwnParameterGroups, RecommenderModel, SparseFeatureInput,
                                        SubgraphRecommender, takes_categorical_fields, takes_sparse_features)

#: the shipped models (other test modules may register stand-ins of their own)
MODELS = [name for name in available_models() if get_model_entry(name).model_cls.__module__.startswith("graphrec.")]

#: the optional roles each model takes on, and the input flags it declares
CAPABILITIES = {
    "lightgcn": {ItemImageSupport, DecoupledPropagation, SubgraphRecommender},
    "ultragcn": {ItemImageSupport},
    "pop": set(),
    "catgcn": {DecoupledPropagation, DecoupledNodeClassifier, "categorical_fields"},
    "dagnn": {"sparse_features"},
    "gcn": {"sparse_features", LayerwiseModel},
    "gcnii": {LayerwiseModel},
    "latte": {OwnParameterGroups},
    "han": set(),
    "hgt": set(),
}
OPTIONAL_ROLES = (ItemImageSupport, DecoupledPropagation, SubgraphRecommender, DecoupledNodeClassifier,
                  OwnParameterGroups, LayerwiseModel)
PROTOCOLS = (RecommenderModel, NodeClassifier, HeteroNodeClassifier, SparseFeatureInput, CategoricalFieldInput,
             *OPTIONAL_ROLES)

#: models with nothing to train (their outputs are a function of the data alone)
NO_PARAMETERS = {"pop"}

#: models whose config dataclass and constructor disagree on a default (none today)
DEFAULTS_DIFFER: set[str] = set()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ tiny data, one per task
def interaction_csr(num_users: int = 6, num_items: int = 16) -> sp.csr_matrix:
    """Every user has 3-5 items, every item at least one user."""
    rng = np.random.default_rng(0)
    rows, cols = [], []
    for user in range(num_users):
        items = rng.choice(num_items, size=3 + user % 3, replace=False)
        rows += [user] * len(items)
        cols += list(items)
    rows += [item % num_users for item in range(num_items)]
    cols += list(range(num_items))
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(num_users, num_items))
    matrix.data[:] = 1.0
    return matrix


def node_graph(categorical: bool) -> Data:
    """10 nodes on a ring plus chords, two classes, the public split's masks."""
    from graphrec.data.categorical import categorical_graph

    g = torch.Generator().manual_seed(0)
    ring = torch.arange(10)
    edge_index = torch.cat([torch.stack([ring, (ring + 1) % 10]), torch.tensor([[0, 3, 5], [5, 8, 9]])], 1)
    y = ring % 2
    if categorical:
        codes = torch.stack([ring % 2, ring % 3, (ring // 3) % 2], 1)
        data = categorical_graph(codes.tolist(), edge_index, y.tolist(), cardinalities=[2, 3, 2])
    else:
        data = Data(x=torch.rand(10, 6, generator=g), edge_index=torch.cat([edge_index, edge_index.flip(0)], 1), y=y)
    data.train_mask = ring < 4
    data.val_mask = (ring >= 4) & (ring < 7)
    data.test_mask = ring >= 7
    return data


PA, AP = ("paper", "to", "author"), ("author", "to", "paper")
PS, SP = ("paper", "to", "subject"), ("subject", "to", "paper")


def hetero_graph() -> HeteroData:
    """8 papers (features, labels), 4 authors (features), 2 subjects (none)."""
    g = torch.Generator().manual_seed(0)
    data = HeteroData()
    data["paper"].x = torch.rand(8, 5, generator=g)
    data["author"].x = torch.rand(4, 3, generator=g)
    data["subject"].num_nodes = 2
    data["paper"].y = torch.arange(8) % 2
    pa = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 0, 5], [0, 0, 1, 1, 2, 2, 3, 3, 2, 1]])
    ps = torch.stack([torch.arange(8), torch.arange(8) % 2])
    data[PA].edge_index, data[AP].edge_index = pa, pa.flip(0)
    data[PS].edge_index, data[SP].edge_index = ps, ps.flip(0)
    index = torch.arange(8)
    for name, mask in (("train", index < 4), ("val", (index >= 4) & (index < 6)), ("test", index >= 6)):
        data["paper"][f"{name}_mask_2"] = mask
    data.target_node_type, data.label_splits, data.name = "paper", (2,), "tiny"
    return data


def make_task(name: str, device: str = "cpu"):
    """The model's task on tiny data (built as ``graphrec fit`` builds it), on ``device``."""
    entry = get_model_entry(name)
    if entry.task == "recommendation":
        from graphrec.data.interactions import InteractionGraph
        from graphrec.train.recommendation import RecommendationTask

        graph = InteractionGraph(6, 16, interaction_csr())
        return RecommendationTask(graph, TrainConfig(batch_size=8, device=device), SamplingConfig(num_negatives=1))
    if entry.task == "node_classification":
        from graphrec.train.node_classification import NodeClassificationTask

        return NodeClassificationTask(node_graph(categorical=takes_categorical_fields(entry.model_cls)),
                                      TrainConfig(normalize_features=False, device=device))
    from graphrec.train.hetero_classification import HeteroNodeClassificationTask

    return HeteroNodeClassificationTask(hetero_graph(), TrainConfig(normalize_features=False, split="2", device=device))


def build(task, name: str, seed: int = 0, **overrides):
    entry = get_model_entry(name)
    torch.manual_seed(seed)
    return task.build_model(entry, entry.config_cls(**overrides))


def first_batch(task):
    return next(iter(task.train_batches(epoch=0)))


@torch.no_grad()
def outputs(task, model) -> list[torch.Tensor]:
    """Eval-mode outputs that depend on every parameter: embeddings, or all logits."""
    model.eval()
    if isinstance(model, RecommenderModel):
        return list(model.embeddings())
    if isinstance(model, HeteroNodeClassifier):
        graph = task.graph
        return [model(graph.x_dict, graph.edge_index_dict, graph.n_id_dict)]
    return [task.logits(model)]


# ------------------------------------------------------------------ the registry-wide contract
def test_every_shipped_model_is_covered():
    assert set(MODELS) == set(CAPABILITIES), "add the new model's capabilities to CAPABILITIES"


@pytest.mark.parametrize("name", MODELS)
def test_meets_its_role_and_declares_its_capabilities(name):
    entry = get_model_entry(name)
    task = make_task(name)
    model = build(task, name)
    assert isinstance(model, ROLE_PROTOCOLS[entry.task])
    roles = {role for role in OPTIONAL_ROLES if isinstance(model, role)}
    flags = {flag for flag, declared in (("sparse_features", takes_sparse_features(model)),
                                         ("categorical_fields", takes_categorical_fields(model))) if declared}
    assert roles | flags == CAPABILITIES[name]


def protocol_members(protocol) -> set[str]:
    """The names a Protocol lists (its own and its parent Protocols'), as ``isinstance`` checks them."""
    names = set()
    for cls in protocol.__mro__:
        if getattr(cls, "_is_protocol", False) and cls.__module__ == "graphrec.models.interfaces":
            names |= {n for n in (*vars(cls), *getattr(cls, "__annotations__", {})) if not n.startswith("_")}
    return names


@pytest.mark.parametrize("name", MODELS)
def test_contract_members_are_found_statically(name):
    """From Python 3.12 ``isinstance`` on a Protocol uses ``inspect.getattr_static``: a member that is a
    submodule or parameter (served by ``nn.Module.__getattr__``) would make the model fail its contract."""
    model = build(make_task(name), name)
    for protocol in PROTOCOLS:
        if isinstance(model, protocol):
            for member in protocol_members(protocol):
                inspect.getattr_static(model, member)    # raises AttributeError when not found statically


def test_lightgcn_initial_representation_is_its_layer0_rows():
    task = make_task("lightgcn")
    model = build(task, "lightgcn")
    nodes = torch.tensor([0, 5, 6, 21, 6])
    assert torch.equal(model.initial_representation(nodes), model.embedding.weight[nodes])


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_on_a_tiny_graph(name):
    task = make_task(name)
    model = build(task, name)
    model.train()
    loss = task.training_loss(model, first_batch(task))
    assert loss.dim() == 0 and bool(torch.isfinite(loss))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    if name in NO_PARAMETERS:
        assert grads == [] and float(loss.detach()) == 0.0
    else:
        assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)
    assert all(g is None or bool(torch.isfinite(g).all()) for g in grads)
    metrics = task.evaluate(model, task.selection_split)
    assert metrics and all(np.isfinite(value) for value in metrics.values())


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trips_with_weights_only(name):
    task = make_task(name)
    model = build(task, name, seed=0)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = build(task, name, seed=1)       # other initial weights
    if name in NO_PARAMETERS:   # no initial weights: the state (buffers) is what the data gives
        assert state and all(not p.requires_grad for p in fresh.parameters())
        fresh = get_model_entry(name).build(num_users=task.graph.num_users, num_items=task.graph.num_items)
    assert any(not torch.equal(a, b) for a, b in zip(outputs(task, model), outputs(task, fresh)))
    fresh.load_state_dict(state)
    for a, b in zip(outputs(task, model), outputs(task, fresh)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason="defaults written twice: issue 20 point 4"))
    if name in DEFAULTS_DIFFER else name for name in MODELS])
def test_config_defaults_are_the_constructor_defaults(name):
    entry = get_model_entry(name)
    parameters = inspect.signature(entry.model_cls.__init__).parameters
    for field in dataclasses.fields(entry.config_cls):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        assert field.name in parameters, f"{name}: config field {field.name} is no constructor argument"
        assert parameters[field.name].default == default, f"{name}.{field.name}"


# ------------------------------------------------------------------ contracts the tasks rely on
def test_auxiliary_loss_is_returned_and_added_by_the_task():
    task = make_task("latte")
    model = build(task, "latte", use_proximity=True, embedding_dim=8).train()
    assert not hasattr(model, "auxiliary_loss")      # returned, never left on the module
    graph = task.graph
    torch.manual_seed(3)
    logits, auxiliary = model.forward_with_aux(graph.x_dict, graph.edge_index_dict, graph.n_id_dict)
    assert auxiliary is not None and float(auxiliary.detach()) > 0
    torch.manual_seed(3)
    assert torch.equal(model(graph.x_dict, graph.edge_index_dict, graph.n_id_dict), logits)
    torch.manual_seed(3)
    expected = F.cross_entropy(logits[graph.mask], graph.y[graph.mask]) + auxiliary
    assert torch.equal(task.training_loss(model, graph), expected)
    model.eval()
    assert model.forward_with_aux(graph.x_dict, graph.edge_index_dict, graph.n_id_dict)[1] is None


def test_tasks_refuse_models_outside_the_contract():
    from torch import nn

    from graphrec.train.hetero_classification import HeteroNodeClassificationTask

    class Plain(nn.Module):
        def forward(self, x_dict, edge_index_dict, n_id_dict):
            return torch.zeros(8, 2)

    entry = dataclasses.replace(get_model_entry("han"), model_cls=lambda **sizes: Plain())
    task = HeteroNodeClassificationTask(hetero_graph(), TrainConfig(normalize_features=False, split="2"))
    with pytest.raises(TypeError, match="forward_with_aux"):
        task.build_model(entry, entry.config_cls())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by benchmarks/gpu/device_check.sh)")
@pytest.mark.parametrize("name", MODELS)
def test_cuda_step_equals_cpu_step(name):
    """``--device cuda`` for every model: one loss and its gradients on CUDA equal the CPU ones
    (eval mode, so no dropout draw differs between the devices' generators)."""
    results = []
    for device in ("cpu", "cuda"):
        task = make_task(name, device)
        model = build(task, name, seed=0)
        model.eval()
        loss = task.training_loss(model, first_batch(task))
        loss.backward()
        grads = [p.grad.detach().cpu() if p.grad is not None else None for p in model.parameters()]
        results.append((loss.detach().cpu(), grads, [o.cpu() for o in outputs(task, model)]))
    (loss_cpu, grads_cpu, out_cpu), (loss_gpu, grads_gpu, out_gpu) = results
    torch.testing.assert_close(loss_gpu, loss_cpu, rtol=1e-4, atol=1e-5)
    for a, b in zip(grads_cpu, grads_gpu):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5)
    for a, b in zip(out_cpu, out_gpu):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
