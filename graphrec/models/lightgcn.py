"""LightGCN (He et al., SIGIR 2020)."""
from __future__ import annotations

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from graphrec.models.registry import get_model_entry, register_model
from graphrec.nn import NormalizedAdjacency, SubgraphPropagation, bpr_loss, layer_mean_rows


@register_model(
    "lightgcn", task="recommendation",
    description="LightGCN (He et al., SIGIR 2020): linear propagation on the user-item graph, BPR loss",
)
class LightGCN(nn.Module):
    r"""LightGCN from `"LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation" <https://arxiv.org/abs/2002.02126>`_ (He et al., SIGIR 2020).

    Layer-0 embeddings :math:`\mathbf{E}^{(0)}` (users then items) are propagated with
    no weights and no non-linearity over the symmetric-normalised bipartite adjacency

    .. math::
        \mathbf{E}^{(k+1)} = \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}\mathbf{E}^{(k)},
        \qquad \mathbf{E} = \sum_{k=0}^{K} \alpha_k \mathbf{E}^{(k)},\quad \alpha_k = \tfrac{1}{K+1},

    and a user-item score is the inner product :math:`\hat y_{ui} = \mathbf{e}_u^\top\mathbf{e}_i`.
    Training minimises the BPR loss with L2 on the batch's layer-0 embeddings,

    .. math::
        L = \frac{1}{B}\sum_{(u,i,j)} -\ln\sigma(\hat y_{ui} - \hat y_{uj})
            + \lambda \frac{1}{2B}\left(\|\mathbf{e}^{(0)}_u\|^2 + \|\mathbf{e}^{(0)}_i\|^2
            + \|\mathbf{e}^{(0)}_j\|^2\right),

    as in the official code (``reg_weight`` = :math:`\lambda`).

    A plain ``nn.Module``: ``model(adjacency)`` returns all final user and item
    embeddings; :meth:`recommendation_loss` computes the loss of a batch and only
    propagates the last layer for the batch's own rows (the result is identical).
    Graphrec's Trainer calls :meth:`prepare` once with the train interactions, then
    :meth:`loss` and :meth:`embeddings`.

    Item images (optional, :meth:`attach_item_images`): an item's final representation becomes
    :math:`\mathbf{e}_i + \mathbf{P}\,\phi(\text{image}_i)` (a shared conv backbone
    :math:`\phi` and a projection :math:`\mathbf{P}`; :class:`~graphrec.encoders.ImageNodeEncoder`).
    The image term is added after propagation, not to :math:`\mathbf{E}^{(0)}`, so a batch needs
    only its own items' images (end-to-end training encodes the batch's unique items, not the
    catalogue); items without an image keep their ID embedding alone. Without images nothing changes.

    Args:
        num_users: number of users.
        num_items: number of items.
        embedding_dim: embedding size (paper: 64).
        num_layers: propagation layers K (paper: 3).
        init_std: std of the normal initialisation (official code: 0.1).
        reg_weight: L2 weight on the batch's layer-0 embeddings (paper: 1e-4).
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, num_layers: int = 3,
                 init_std: float = 0.1, reg_weight: float = 1e-4):
        super().__init__()
        if num_users < 1 or num_items < 1 or embedding_dim < 1 or num_layers < 0:
            raise ValueError("num_users, num_items, embedding_dim must be >= 1 and num_layers >= 0")
        self.num_users = num_users
        self.num_items = num_items
        self.num_layers = num_layers
        self.reg_weight = reg_weight
        # One table for users (rows 0..U-1) then items (rows U..U+I-1), as in PyG's LightGCN:
        # propagation works on the stacked matrix, so no concatenation per step.
        self.embedding = nn.Embedding(num_users + num_items, embedding_dim)
        nn.init.normal_(self.embedding.weight, std=init_std)
        self.adjacency: NormalizedAdjacency | None = None
        self.item_image_encoder: nn.Module | None = None  # attach_item_images(); None: pure LightGCN
        #: sampled mode with train.optimizer=sparse_adam: layer-0 rows give sparse gradients (the batch's rows only)
        self.sparse_gradients = False

    def attach_item_images(self, encoder: nn.Module) -> "LightGCN":
        """Add projected item-image features to every item's representation (see the class notes).

        ``encoder``: an :class:`~graphrec.encoders.ImageNodeEncoder` over the items (``num_items``
        nodes, ``out_dim`` = ``embedding_dim``), frozen or end to end.
        """
        _check_item_encoder(encoder, self.num_items, self.embedding.embedding_dim)
        self.item_image_encoder = encoder
        return self

    def initial_representation(self, nodes: torch.Tensor) -> torch.Tensor:
        """Layer-0 rows of ``nodes`` (users ``0..U-1``, items ``U..``): what sampled mode propagates
        (:class:`~graphrec.models.interfaces.SubgraphRecommender`)."""
        return F.embedding(nodes, self.embedding.weight, sparse=self.sparse_gradients)

    @property
    def item_embedding_dim(self) -> int:
        """Width of an item's representation (:class:`~graphrec.models.interfaces.ItemImageSupport`)."""
        return self.embedding.embedding_dim

    # ------------------------------------------------------------- plain-module API
    @property
    def user_weight(self) -> torch.Tensor:
        """Layer-0 user embeddings (a view into ``embedding.weight``)."""
        return self.embedding.weight[: self.num_users]

    @property
    def item_weight(self) -> torch.Tensor:
        """Layer-0 item embeddings (a view into ``embedding.weight``)."""
        return self.embedding.weight[self.num_users:]

    def forward(self, adjacency: NormalizedAdjacency | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings of all users and all items."""
        adjacency = self._adjacency(adjacency)
        x = self.embedding.weight
        total = x
        for _ in range(self.num_layers):
            x = adjacency.propagate(x)
            total = total + x
        final = total / (self.num_layers + 1)
        if self.item_image_encoder is not None:
            return final[: self.num_users], final[self.num_users:] + self.item_image_encoder.all_features()
        return final[: self.num_users], final[self.num_users:]

    def recommendation_loss(self, users: torch.Tensor, pos_items: torch.Tensor, neg_items: torch.Tensor,
                            adjacency: NormalizedAdjacency | None = None) -> torch.Tensor:
        """BPR loss + L2 on layer-0 embeddings, averaged over the batch."""
        adjacency = self._adjacency(adjacency)
        if neg_items.dim() == 2:
            if neg_items.shape[1] != 1:
                raise ValueError("LightGCN's BPR loss takes one negative per positive")
            neg_items = neg_items[:, 0]
        rows = torch.cat([users, pos_items + self.num_users, neg_items + self.num_users])
        # Fused: all layers but the last for every node, the last for the batch rows only.
        final, ego = layer_mean_rows(adjacency, self.embedding.weight, rows, self.num_layers)
        batch = users.shape[0]
        user_e, pos_e, neg_e = final[:batch], final[batch: 2 * batch], final[2 * batch:]
        if self.item_image_encoder is not None:
            # one call for positives and negatives: an item in both is encoded once
            images = self.item_image_encoder(torch.cat([pos_items, neg_items]))
            pos_e, neg_e = pos_e + images[:batch], neg_e + images[batch:]
        return bpr_loss(user_e, pos_e, neg_e, ego, self.reg_weight)

    # ------------------------------------------------------------- sampled subgraphs (sampling.mode=sampled)
    def subgraph_embeddings(self, batch, propagation: SubgraphPropagation) -> torch.Tensor:
        """Final embeddings of a sampled batch's seed nodes (users ``0..U-1``, items ``U..``), propagated
        over the batch's K-hop subgraph only (the full-graph values when the fan-outs take every
        neighbour). Item images are not included (see :meth:`subgraph_loss`)."""
        return propagation.layer_mean(self.initial_representation(batch.n_id), batch, self.num_layers)

    def subgraph_loss(self, batch, propagation: SubgraphPropagation, deep: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`recommendation_loss` on a :class:`~graphrec.sampling.LinkNeighborSampler` batch, with the
        propagation restricted to the sampled subgraph (identical when the fan-outs take every
        neighbour). The L2 term is over the triples' layer-0 rows, repeats included, as there;
        item images are added to the batch's items as there.

        ``deep``: for a batch sampled with fewer hops ``h`` than layers, the seeds' rows of
        :meth:`deep_layer_sum` ``(h + 1)`` (historical layers; see :class:`SubgraphPropagation.layer_mean`)."""
        x0 = self.initial_representation(batch.n_id)
        final = propagation.layer_mean(x0, batch, self.num_layers, deep)
        src, pos, neg = batch.src_index, batch.dst_pos_index, batch.dst_neg_index
        if neg.dim() == 2:
            if neg.shape[1] != 1:
                raise ValueError("LightGCN's BPR loss takes one negative per positive")
            neg = neg[:, 0]
        user_e, pos_e, neg_e = final[src], final[pos], final[neg]
        if self.item_image_encoder is not None:
            items = batch.n_id[torch.cat([pos, neg])] - self.num_users
            images = self.item_image_encoder(items)
            pos_e, neg_e = pos_e + images[: pos.shape[0]], neg_e + images[pos.shape[0]:]
        return bpr_loss(user_e, pos_e, neg_e, x0[torch.cat([src, pos, neg])], self.reg_weight)

    @torch.no_grad()
    def deep_layer_sum(self, first_layer: int) -> torch.Tensor:
        r""":math:`\sum_{k=\text{first}}^{K} \mathbf{E}^{(k)}` for every node (users then items), on the
        full graph, without autograd: the historical layers of sampled training with fewer hops than
        layers (``sampling.history_refreshes``)."""
        if not 1 <= first_layer <= self.num_layers:
            raise ValueError(f"first_layer must be in 1..{self.num_layers}, got {first_layer}")
        adjacency = self._adjacency(None)
        x, total = self.embedding.weight.detach(), None
        for k in range(1, self.num_layers + 1):
            x = adjacency.propagate(x)
            if k >= first_layer:
                total = x if total is None else total + x
        return total

    def _adjacency(self, adjacency):
        adjacency = adjacency if adjacency is not None else self.adjacency
        if adjacency is None:
            raise RuntimeError("pass the NormalizedAdjacency, or call model.prepare(train_matrix) first")
        return adjacency

    # ------------------------------------------------------------- recommender interface
    def prepare(self, train: sp.csr_matrix) -> None:
        """Build the normalised adjacency of the train interactions (users x items CSR)."""
        if train.shape != (self.num_users, self.num_items):
            raise ValueError(f"train matrix has shape {train.shape}, model expects "
                             f"({self.num_users}, {self.num_items})")
        self.adjacency = NormalizedAdjacency.from_interactions(train)

    def loss(self, batch) -> torch.Tensor:
        return self.recommendation_loss(batch.users, batch.pos_items, batch.neg_items)

    @torch.no_grad()
    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward()


def _check_item_encoder(encoder: nn.Module, num_items: int, dim: int) -> None:
    if getattr(encoder, "num_nodes", num_items) != num_items:
        raise ValueError(f"the item image encoder covers {encoder.num_nodes} nodes, the model has {num_items} items")
    if getattr(encoder, "out_dim", dim) != dim:
        raise ValueError(f"the item image encoder outputs {encoder.out_dim} features, the embeddings have {dim}: "
                         f"build it with out_dim={dim}")


#: LightGCN's hyper-parameters as a dataclass, derived from its constructor by the registry
LightGCNConfig = get_model_entry("lightgcn").config_cls
