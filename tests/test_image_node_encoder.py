"""Node images, ImageNodeEncoder (frozen cache, end to end) and its wiring into graph models."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphrec.encoders import ImageNodeEncoder, NodeImages, create_encoder
from graphrec.encoders.graph import ImageFeatureModel, attach_image_features, build_node_classifier
from graphrec.models import CatGCN, LightGCN, UltraGCN, get_model_entry
from graphrec.sampling import FeatureStore

PIL = pytest.importorskip("PIL.Image")


def write_pngs(folder, ids, size=12, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for node in ids:
        array = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        PIL.fromarray(array).save(folder / f"{node}.png")
        arrays[node] = array
    return arrays


def tiny_encoder(seed=0, **kwargs):
    torch.manual_seed(seed)
    return create_encoder("vanillanet_tiny_test", **kwargs)


def test_folder_loader_reads_pngs_by_node_id_and_marks_missing(tmp_path):
    arrays = write_pngs(tmp_path / "img", ["a", "c"])
    images = NodeImages.from_folder(tmp_path / "img", node_ids=["a", "b", "c"], image_size=12,
                                    mean=(0, 0, 0), std=(1, 1, 1))
    assert images.has_image().tolist() == [True, False, True]
    batch, present = images.load([2, 1, 0])
    assert batch.shape == (3, 3, 12, 12) and present.tolist() == [True, False, True]
    expected = torch.from_numpy(arrays["c"]).permute(2, 0, 1).float() / 255
    assert torch.allclose(batch[0], expected, atol=1e-6)
    assert batch[1].abs().sum() == 0
    (tmp_path / "img" / "zz.png").write_bytes((tmp_path / "img" / "a.png").read_bytes())
    with pytest.raises(ValueError, match="named by no node id"):
        NodeImages.from_folder(tmp_path / "img", node_ids=["a", "b", "c"])


def test_table_loader_and_from_path(tmp_path):
    write_pngs(tmp_path / "files", [0, 1])
    table = tmp_path / "images.csv"
    table.write_text("node,path\n1,files/1.png\n0,files/0.png\n")
    images = NodeImages.from_path(table, num_nodes=3, image_size=8)
    assert images.has_image().tolist() == [True, True, False]
    assert images.load([0, 1])[0].shape == (2, 3, 8, 8)
    assert NodeImages.from_path(tmp_path / "files", num_nodes=2).has_image().all()
    table.write_text("0,files/missing.png\n")
    with pytest.raises(FileNotFoundError):
        NodeImages.from_table(table, num_nodes=3)


def test_frozen_features_equal_direct_encoding_and_are_cached(tmp_path):
    write_pngs(tmp_path / "img", [0, 1, 3, 4])
    images = NodeImages.from_folder(tmp_path / "img", num_nodes=5, image_size=16)
    encoder = tiny_encoder().eval()
    node = ImageNodeEncoder(encoder, images, out_dim=6, cache_dir=tmp_path / "cache", batch_size=3,
                            autocast="off", progress=False)
    store = node.feature_store()
    assert isinstance(store, FeatureStore) and store.num_rows == 5 and node.cache_path.exists()
    with torch.no_grad():
        direct = encoder(images.load([0, 1, 3, 4])[0])
    assert torch.allclose(store.table[[0, 1, 3, 4]].float(), direct, atol=1e-4)
    assert store.table[2].abs().sum() == 0
    out = node(torch.tensor([[2, 0], [0, 4]]))
    assert out.shape == (2, 2, 6) and out[0, 0].abs().sum() == 0     # no image: zero, bias not leaked
    assert all(not p.requires_grad for p in encoder.parameters())
    assert set(node.state_dict()) == {"projection.weight", "projection.bias"}   # backbone not in checkpoints
    # same backbone, weights, size, dtype and images: read from the cache, nothing encoded
    again = ImageNodeEncoder(tiny_encoder(), NodeImages.from_folder(tmp_path / "img", num_nodes=5, image_size=16),
                             out_dim=6, cache_dir=tmp_path / "cache", autocast="off", progress=False)
    again.precompute()
    assert again.stats["cached"] and again.cache_path == node.cache_path
    # a different image size or different weights is a different cache entry
    other = ImageNodeEncoder(tiny_encoder(seed=1), NodeImages.from_folder(tmp_path / "img", num_nodes=5, image_size=16),
                             out_dim=6, cache_dir=tmp_path / "cache", autocast="off", progress=False)
    other.precompute()
    resized = ImageNodeEncoder(tiny_encoder(), NodeImages.from_folder(tmp_path / "img", num_nodes=5, image_size=20),
                               out_dim=6, cache_dir=tmp_path / "cache", autocast="off", progress=False)
    resized.precompute()
    assert len({node.cache_path, other.cache_path, resized.cache_path}) == 3


def test_end_to_end_unique_encoding_equals_per_occurrence_with_gradients():
    images = NodeImages.from_tensor(torch.rand(6, 3, 16, 16))
    images.present[5] = False
    unique = ImageNodeEncoder(tiny_encoder(), images, out_dim=4, mode="end_to_end", progress=False)
    naive = ImageNodeEncoder(tiny_encoder(), images, out_dim=4, mode="end_to_end", unique=False, progress=False)
    naive.load_state_dict(unique.state_dict())
    unique.eval(), naive.eval()   # BN on running statistics: batch composition does not matter
    ids = torch.tensor([1, 1, 1, 4, 5, 1, 0, 4])
    calls = []
    unique.encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    a, b = unique(ids), naive(ids)
    assert calls == [3]                       # 1, 4, 0 encoded once each; node 5 has no image
    assert torch.allclose(a, b, atol=1e-5) and a[4].abs().sum() == 0
    a.sum().backward(), b.sum().backward()
    for (name, pa), pb in zip(unique.named_parameters(), naive.parameters()):
        assert pa.grad is not None, name
        assert torch.allclose(pa.grad, pb.grad, atol=1e-4, rtol=1e-3), name


def interactions(users=6, items=5):
    rows = np.array([0, 0, 1, 2, 3, 4, 5, 5, 1])
    cols = np.array([0, 1, 2, 3, 4, 0, 1, 2, 4])
    return sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(users, items))


@pytest.mark.parametrize("mode", ["frozen", "end_to_end"])
def test_lightgcn_item_images_fall_back_to_id_embeddings(mode):
    torch.manual_seed(0)
    train = interactions()
    model = LightGCN(6, 5, embedding_dim=8, num_layers=2)
    model.prepare(train)
    users_before, items_before = model.embeddings()
    images = NodeImages.from_tensor(torch.rand(5, 3, 16, 16))
    images.present[[1, 3]] = False
    model.attach_item_images(ImageNodeEncoder(tiny_encoder(), images, out_dim=8, mode=mode, progress=False))
    users, items = model.embeddings()
    assert torch.allclose(users, users_before)
    assert torch.allclose(items[[1, 3]], items_before[[1, 3]])          # no image: ID embedding alone
    assert not torch.allclose(items[[0, 2, 4]], items_before[[0, 2, 4]])
    loss = model.recommendation_loss(torch.tensor([0, 1, 2]), torch.tensor([0, 2, 3]), torch.tensor([4, 4, 1]))
    loss.backward()
    assert model.item_image_encoder.projection.weight.grad is not None
    if mode == "end_to_end":
        assert any(p.grad is not None for p in model.item_image_encoder.encoder.parameters())
    with pytest.raises(ValueError, match="out_dim=8"):
        LightGCN(6, 5, embedding_dim=8).attach_item_images(
            ImageNodeEncoder(tiny_encoder(), images, out_dim=4, progress=False))


def test_ultragcn_item_images_in_every_loss_path():
    torch.manual_seed(0)
    train = interactions()
    model = UltraGCN(6, 5, embedding_dim=8, num_item_neighbors=2, init_std=0.1)
    model.prepare(train)
    images = NodeImages.from_tensor(torch.rand(5, 3, 16, 16))
    images.present[2] = False
    model.attach_item_images(ImageNodeEncoder(tiny_encoder(), images, out_dim=8, progress=False))
    users, pos, neg = torch.tensor([0, 1, 5]), torch.tensor([1, 2, 2]), torch.randint(0, 5, (3, 7))
    fused = model.recommendation_loss(users, pos, neg)
    reference = (model.objective_loss(users, pos, neg) + model.item_constraint_loss(users, pos) * model.item_constraint_weight
                 + model.l2_weight * model.norm_loss())
    assert torch.allclose(fused, reference, rtol=1e-4, atol=1e-5)
    fused.backward()
    assert model.item_image_encoder.projection.weight.grad is not None
    _, items = model.embeddings()
    assert torch.allclose(items[2], model.item_embedding.weight[2])


def test_node_classifiers_take_image_features():
    torch.manual_seed(0)
    n, edge_index = 6, torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
    images = NodeImages.from_tensor(torch.rand(n, 3, 16, 16))
    node = ImageNodeEncoder(tiny_encoder(), images, out_dim=5, mode="end_to_end", progress=False)
    entry = get_model_entry("dagnn")
    model = build_node_classifier(entry, entry.config_cls(num_hops=2), num_features=4, num_classes=3, node_encoder=node)
    logits = model(torch.rand(n, 4), edge_index)
    assert logits.shape == (n, 3) and model.model.lin1.in_features == 9
    logits.sum().backward()
    assert any(p.grad is not None for p in node.encoder.parameters())
    # CatGCN: image features added to its initial representation (out_dim = classes)
    fields = torch.randint(0, 7, (n, 3))
    catgcn = CatGCN(7, 3, embedding_dim=4, num_hops=1)
    wrapped = ImageFeatureModel(catgcn, ImageNodeEncoder(tiny_encoder(), images, out_dim=3, progress=False))
    assert wrapped.categorical_fields
    catgcn.eval(), wrapped.eval()
    with torch.no_grad():
        expected = catgcn.propagate(catgcn.initial_representation(fields) + wrapped.node_encoder.all_features(),
                                    catgcn.adjacency(edge_index, n))
        assert torch.allclose(wrapped(fields, edge_index), expected)


def test_hetero_node_type_gets_frozen_image_features():
    from torch_geometric.data import HeteroData

    data = HeteroData()
    data["paper"].x = torch.rand(4, 2)
    data["author"].num_nodes = 3
    node = ImageNodeEncoder(tiny_encoder(), NodeImages.from_tensor(torch.rand(4, 3, 16, 16)), out_dim=5, progress=False)
    attach_image_features(data, "paper", node)
    assert data["paper"].x.shape == (4, 7)
    node_a = ImageNodeEncoder(tiny_encoder(), NodeImages.from_tensor(torch.rand(3, 3, 16, 16)), out_dim=5, progress=False)
    attach_image_features(data, "author", node_a)
    assert data["author"].x.shape == (3, 5)


def test_catgcn_with_images_trains_on_sampled_subgraphs():
    # Sampled mode asks for the batch rows' initial representation: with images it must include the
    # images of exactly those nodes (before, the wrapper had no initial_representation and failed).
    from graphrec.encoders.graph import build_node_classifier
    from graphrec.models.interfaces import DecoupledNodeClassifier

    n = 6
    images = NodeImages.from_tensor(torch.rand(n, 3, 16, 16))
    entry = get_model_entry("catgcn")
    wrapped = build_node_classifier(entry, entry.config_cls(embedding_dim=4, num_hops=1), num_features=7,
                                    num_classes=3, node_encoder=ImageNodeEncoder(tiny_encoder(), images, out_dim=3,
                                                                                 progress=False))
    assert isinstance(wrapped, DecoupledNodeClassifier) and wrapped.num_hops == 1
    wrapped.eval()
    fields, nodes = torch.randint(0, 7, (n, 3)), torch.tensor([4, 0, 4, 2])
    with torch.no_grad():
        full = wrapped.model.initial_representation(fields) + wrapped.node_encoder.all_features()
        assert torch.allclose(wrapped.initial_representation(fields[nodes], nodes), full[nodes], atol=1e-6)
    dense = build_node_classifier(get_model_entry("gcn"), get_model_entry("gcn").config_cls(), num_features=4,
                                  num_classes=3, node_encoder=ImageNodeEncoder(tiny_encoder(), images, out_dim=3,
                                                                               progress=False))
    assert not isinstance(dense, DecoupledNodeClassifier)   # GCN interleaves weights and propagation
