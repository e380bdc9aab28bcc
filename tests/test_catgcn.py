"""CatGCN: interaction branches and propagation pinned against explicit formulas, the task's
class-weighted loss and stratified split, registered paper settings."""
import itertools
import math

import pytest
import torch
from torch import nn

from graphrec.config import TrainConfig, build_run_config
from graphrec.data.categorical import categorical_graph
from graphrec.data.splits import stratified_split
from graphrec.models import CatGCN, create_model, get_model_entry
from graphrec.models.catgcn import FieldGraphConvolution, bi_interaction, field_graph_adjacency
from graphrec.train.node_classification import NodeClassificationTask, class_balance_weights


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# 5 nodes, 3 fields with 2, 3, 2 values (global ids 0-1, 2-4, 5-6); path 0-1-2, edge 2-3, 1-3; 4 isolated.
CODES = [[0, 0, 1], [1, 2, 0], [0, 1, 1], [1, 0, 0], [0, 2, 1]]
EDGES = [(0, 1), (1, 2), (2, 3), (1, 3)]


def tiny_graph(y=(0, 1, 0, 1, 0)):
    edges = torch.tensor(EDGES).t()
    return categorical_graph(CODES, edges, list(y), cardinalities=[2, 3, 2])


def dense_a_hat(num_nodes=5):
    a = torch.zeros(num_nodes, num_nodes, dtype=torch.float64)
    for i, j in EDGES:
        a[i, j] = a[j, i] = 1.0
    a = a + torch.eye(num_nodes, dtype=torch.float64)
    d = a.sum(1).pow(-0.5)
    return d[:, None] * a * d[None, :]


def pairwise_sum(e):
    """sum_{i<j} e_i * e_j by brute force over field pairs, e: [N, F, d]."""
    total = torch.zeros(e.shape[0], e.shape[2], dtype=e.dtype)
    for i, j in itertools.combinations(range(e.shape[1]), 2):
        total += e[:, i] * e[:, j]
    return total


# ---------------------------------------------------------------- local branch
def test_bi_interaction_equals_explicit_pairwise_sum():
    e = torch.randn(4, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(bi_interaction(e), pairwise_sum(e))
    # hand case: one node, fields (1, 2) and (3, -1): pairwise product (3, -2)
    hand = torch.tensor([[[1.0, 2.0], [3.0, -1.0]]])
    torch.testing.assert_close(bi_interaction(hand), torch.tensor([[3.0, -2.0]]))


def test_model_local_branch_is_mlp_of_pairwise_interactions():
    torch.manual_seed(1)
    graph = tiny_graph()
    model = CatGCN(graph.num_field_values, 2, embedding_dim=4, interaction="local").double().eval()
    e = model.embedding.weight[graph.x_fields]  # [N, F, d]
    expected = model.local_mlp[0](pairwise_sum(e))
    torch.testing.assert_close(model.local_interaction(graph.x_fields), expected)


# ---------------------------------------------------------------- global branch
def test_field_graph_adjacency_by_hand():
    adjacency = field_graph_adjacency(3, diag_probe=2.0)
    # J + 2I: diagonal 3, off-diagonal 1, every row sums to 5
    expected = torch.tensor([[3.0, 1.0, 1.0], [1.0, 3.0, 1.0], [1.0, 1.0, 3.0]]) / 5.0
    torch.testing.assert_close(adjacency, expected)


def test_field_graph_convolution_hand_computed():
    conv = FieldGraphConvolution(2, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # scales the 2nd coordinate
        conv.bias.copy_(torch.tensor([0.5, 0.0]))
    fields = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [0.0, 3.0]]])  # one node, 3 fields
    out = conv(fields, diag_probe=2.0)
    # z = fields W = (1, 2), (2, 0), (0, 6); sum z = (3, 8)
    # row f = (sum z + 2 z_f) / 5 + b
    expected = torch.tensor([[[(3 + 2) / 5 + 0.5, (8 + 4) / 5], [(3 + 4) / 5 + 0.5, 8 / 5],
                              [3 / 5 + 0.5, (8 + 12) / 5]]])
    torch.testing.assert_close(out, expected)
    # probe 0: plain mean over the fully connected field graph
    torch.testing.assert_close(conv(fields, 0.0), torch.tensor([[[1.5, 8 / 3]] * 3]))


def test_field_graph_convolution_equals_dense_adjacency_product():
    conv = FieldGraphConvolution(4, 3).double()
    fields = torch.randn(6, 5, 4, dtype=torch.float64)
    for probe in (0.0, 1.0, 3.5):
        dense = field_graph_adjacency(5, probe).double() @ (fields @ conv.weight) + conv.bias
        torch.testing.assert_close(conv(fields, probe), dense)


def test_model_global_branch_matches_reference():
    torch.manual_seed(2)
    graph = tiny_graph()
    model = CatGCN(graph.num_field_values, 3, embedding_dim=4, diag_probe=1.5, interaction="global").double().eval()
    e = model.embedding.weight[graph.x_fields]
    adjacency = field_graph_adjacency(3, 1.5).double()
    h = torch.relu(adjacency @ (e @ model.field_conv.weight) + model.field_conv.bias).mean(dim=1)
    torch.testing.assert_close(model.global_interaction(graph.x_fields), model.global_mlp[0](h))


def test_balance_ratio_mixes_the_branches():
    torch.manual_seed(3)
    graph = tiny_graph()
    model = CatGCN(graph.num_field_values, 2, embedding_dim=4, balance_ratio=0.25).eval()
    g, l = model.global_interaction(graph.x_fields), model.local_interaction(graph.x_fields)
    torch.testing.assert_close(model.initial_representation(graph.x_fields), 0.25 * g + 0.75 * l)


# ---------------------------------------------------------------- propagation
@pytest.mark.parametrize("interaction", ["both", "none"])
def test_propagation_equals_dense_normalised_adjacency_power(interaction):
    torch.manual_seed(4)
    graph = tiny_graph()
    model = CatGCN(graph.num_field_values, 3, embedding_dim=8, num_hops=3, interaction=interaction).double().eval()
    h = model.initial_representation(graph.x_fields)
    expected = torch.linalg.matrix_power(dense_a_hat(), 3) @ h
    torch.testing.assert_close(model(graph.x_fields, graph.edge_index), expected)
    # the isolated node keeps its own representation
    torch.testing.assert_close(model(graph.x_fields, graph.edge_index)[4], h[4])


def test_mean_baseline_is_mean_of_field_embeddings():
    torch.manual_seed(5)
    graph = tiny_graph()
    model = CatGCN(graph.num_field_values, 2, embedding_dim=4, num_hops=0, interaction="none").eval()
    mean = model.embedding.weight[graph.x_fields].mean(dim=1)
    torch.testing.assert_close(model(graph.x_fields, graph.edge_index), model.mean_mlp[0](mean))


# ---------------------------------------------------------------- interface
@pytest.mark.parametrize("interaction", ["both", "global", "local", "none"])
def test_forward_shapes_and_gradients(interaction):
    graph = tiny_graph()
    model = create_model("catgcn", num_features=graph.num_field_values, num_classes=3, interaction=interaction,
                         embedding_dim=8, global_hidden=(5,), local_hidden=(6,))
    assert isinstance(model, nn.Module)
    out = model(graph.x_fields, graph.edge_index)
    assert out.shape == (5, 3) and torch.isfinite(out).all()
    out.sum().backward()
    assert model.embedding.weight.grad is not None and model.embedding.weight.grad.abs().sum() > 0
    # a precomputed sparse A_hat is accepted too
    a_hat = model.adjacency(graph.edge_index, 5)
    model.eval()
    torch.testing.assert_close(model(graph.x_fields, a_hat), model(graph.x_fields, graph.edge_index))


def test_rejects_bad_inputs_and_settings():
    graph = tiny_graph()
    model = CatGCN(graph.num_field_values, 2)
    with pytest.raises(ValueError, match="x_fields"):
        model(graph.x, graph.edge_index)  # the one-hot float x is not what CatGCN takes
    with pytest.raises(ValueError, match="interaction"):
        CatGCN(7, 2, interaction="pairs")
    with pytest.raises(ValueError, match="balance_ratio"):
        CatGCN(7, 2, balance_ratio=1.5)


def test_interactions_fit_xor_where_the_mean_of_embeddings_cannot():
    """Label = XOR of two binary fields: interaction modelling fits it, an additive model cannot
    (at best 3 of the 4 patterns). No edges, no propagation: the initial representations alone."""
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 2, (200, 2), generator=generator)
    y = codes[:, 0] ^ codes[:, 1]
    graph = categorical_graph(codes, torch.zeros(2, 0, dtype=torch.long), y, cardinalities=[2, 2])
    accuracy = {}
    for interaction in ("local", "global", "none"):
        torch.manual_seed(0)
        model = CatGCN(4, 2, embedding_dim=8, num_hops=0, dropout=0.0, interaction=interaction)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(150):
            loss = nn.functional.cross_entropy(model(graph.x_fields, graph.edge_index), graph.y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        accuracy[interaction] = float((model(graph.x_fields, graph.edge_index).argmax(1) == graph.y).float().mean())
    assert accuracy["local"] == 1.0 and accuracy["global"] == 1.0
    assert accuracy["none"] <= 0.8


# ---------------------------------------------------------------- task: class weights, split, fields
class FieldLogits(nn.Module):
    """Takes x_fields (asserts it), returns fixed logits: 2 for the class in PREDICT, 0 else."""

    categorical_fields = True
    PREDICT = torch.tensor([0, 0, 1, 0, 1, 1, 0, 1])

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(2))

    def forward(self, x_fields, edge_index):
        assert x_fields.dtype == torch.long and x_fields.shape == (8, 2)
        return 2.0 * nn.functional.one_hot(self.PREDICT, 2).float() + self.bias


def field_task_graph():
    codes = [[i % 2, i % 3] for i in range(8)]
    y = [0, 0, 0, 1, 1, 0, -1, 1]  # node 6 unlabelled
    graph = categorical_graph(codes, torch.tensor([[0, 1], [1, 2]]), y)
    graph.train_mask = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool)
    graph.val_mask = torch.tensor([0, 0, 0, 0, 1, 1, 0, 0], dtype=torch.bool)
    graph.test_mask = torch.tensor([0, 0, 0, 0, 0, 0, 0, 1], dtype=torch.bool)
    return graph


def test_class_weighted_loss_equals_hand_computation():
    task = NodeClassificationTask(field_task_graph(), TrainConfig(class_weighted_loss=True, normalize_features=False))
    # train labels 0, 0, 0, 1: weights n / (C * count) = 4/6 and 4/2
    torch.testing.assert_close(task.class_weight, torch.tensor([2 / 3, 2.0]))
    right = -math.log(math.exp(2) / (math.exp(2) + 1))
    wrong = -math.log(1 / (math.exp(2) + 1))
    # train nodes 0..3: targets 0 0 0 1, predictions 0 0 1 0 -> right, right, wrong (w 2/3), wrong (w 2)
    expected = (2 / 3 * (2 * right + wrong) + 2.0 * wrong) / (3 * 2 / 3 + 2.0)
    loss = task.training_loss(FieldLogits(), task.graph)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
    # valid nodes 4, 5: targets 1, 0; predictions 1, 1 -> right (w 2), wrong (w 2/3)
    metrics = task.evaluate(FieldLogits(), "valid")
    assert metrics["loss"] == pytest.approx((2 * right + 2 / 3 * wrong) / (2 + 2 / 3), rel=1e-6)
    unweighted = NodeClassificationTask(field_task_graph(), TrainConfig(normalize_features=False))
    assert unweighted.class_weight is None
    assert float(unweighted.training_loss(FieldLogits(), unweighted.graph).detach()) == pytest.approx((2 * right + 2 * wrong) / 4)


def test_class_balance_weights_are_sklearn_balanced():
    torch.testing.assert_close(class_balance_weights(torch.tensor([0, 0, 0, 2]), 3),
                               torch.tensor([4 / 9, 0.0, 4 / 3]))


def test_task_passes_fields_to_categorical_models_and_x_to_others():
    from graphrec.models import create_model as make

    task = NodeClassificationTask(field_task_graph(), TrainConfig(normalize_features=False))
    assert torch.equal(task.features(FieldLogits()), task.graph.x_fields)
    gcn = make("gcn", num_features=task.num_features, num_classes=2)
    assert task.features(gcn).dtype == torch.float32 and task.features(gcn).shape == (8, task.num_features)
    plain = NodeClassificationTask(field_task_graph(), TrainConfig())
    del plain.graph.x_fields
    with pytest.raises(ValueError, match="x_fields"):
        plain.features(FieldLogits())


def test_stratified_split_fractions_and_unlabelled_nodes():
    y = torch.tensor([0] * 50 + [1] * 30 + [-1] * 20)
    masks = stratified_split(y, (0.8, 0.1, 0.1), seed=3)
    assert [int((masks["train"] & (y == c)).sum()) for c in (0, 1)] == [40, 24]
    assert [int((masks["valid"] & (y == c)).sum()) for c in (0, 1)] == [5, 3]
    assert [int((masks["test"] & (y == c)).sum()) for c in (0, 1)] == [5, 3]
    assert not bool((masks["train"] | masks["valid"] | masks["test"])[y < 0].any())
    assert not bool((masks["train"] & masks["valid"]).any() | (masks["valid"] & masks["test"]).any())
    again, other = stratified_split(y, (0.8, 0.1, 0.1), seed=3), stratified_split(y, (0.8, 0.1, 0.1), seed=4)
    assert all(torch.equal(masks[s], again[s]) for s in masks)
    assert not torch.equal(masks["test"], other["test"])
    with pytest.raises(ValueError, match="empty"):
        stratified_split(torch.tensor([0, 0, 1]), (0.8, 0.1, 0.1), seed=0)
    with pytest.raises(ValueError, match="split_fractions"):
        TrainConfig(split="stratified", split_fractions=(0.8, 0.3, 0.1))


def test_registered_official_settings():
    entry = get_model_entry("catgcn")
    assert entry.task == "node_classification"
    config = build_run_config("catgcn", "income")
    model, train = config.model_config, config.train
    assert (model.embedding_dim, model.num_hops, model.dropout, model.diag_probe, model.balance_ratio,
            model.interaction) == (64, 6, 0.3, 1.0, 0.4, "both")
    assert (train.lr, train.weight_decay, train.patience, train.monitor, train.monitor_mode) == (0.1, 1e-4, 10, "loss", "min")
    assert (train.split, tuple(train.split_fractions), train.class_weighted_loss) == ("stratified", (0.8, 0.1, 0.1), True)
    baseline = build_run_config("catgcn", "income", overrides={"model.interaction": "none"})
    assert baseline.model_config.num_hops == model.num_hops  # the baseline has the same depth
