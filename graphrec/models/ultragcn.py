"""UltraGCN (Mao et al., CIKM 2021)."""
from __future__ import annotations

import numba as nb
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from graphrec.kernels.item_similarity import WEIGHTINGS, item_item_topk
from graphrec.kernels.pair_scores import pair_scores, pair_scores_item_grad, pair_scores_user_grad
from graphrec.models.registry import get_model_entry, register_model


def _validate(item_weighting: str, num_item_neighbors: int, **_) -> None:
    if item_weighting not in WEIGHTINGS:
        raise ValueError(f"item_weighting must be one of {WEIGHTINGS}, got {item_weighting!r}")
    if num_item_neighbors < 1:
        raise ValueError("num_item_neighbors must be >= 1")


def constraint_coefficients(train: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-user and per-item factors of :math:`\beta_{u,i} = \frac{1}{d_u}\sqrt{\frac{d_u+1}{d_i+1}}`.

    Returns ``(beta_user, beta_item)`` with ``beta_user[u] = sqrt(d_u + 1) / d_u`` (0 for a
    user with no train item) and ``beta_item[i] = 1 / sqrt(d_i + 1)``, so that
    ``beta(u, i) = beta_user[u] * beta_item[i]`` (the official code's ``beta_uD``/``beta_iD``).
    """
    matrix = sp.csr_matrix(train)
    user_degree = np.diff(matrix.indptr).astype(np.float64)
    item_degree = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta_user = np.where(user_degree > 0, np.sqrt(user_degree + 1.0) / user_degree, 0.0)
    beta_item = 1.0 / np.sqrt(item_degree + 1.0)
    return beta_user, beta_item


@register_model(
    "ultragcn", task="recommendation", validate=_validate,
    description="UltraGCN (Mao et al., CIKM 2021): no message passing; constraint losses on user-item "
                "and top-K item-item pairs",
)
class UltraGCN(nn.Module):
    r"""UltraGCN from `"UltraGCN: Ultra Simplification of Graph Convolutional Networks for
    Recommendation" <https://arxiv.org/abs/2110.15114>`_ (Mao et al., CIKM 2021).

    No message passing: the fixed point of infinitely many LightGCN-style layers,
    :math:`\mathbf{e}_u = \sum_{i\in\mathcal{N}(u)} \beta_{u,i}\,\mathbf{e}_i` with

    .. math::
        \beta_{u,i} = \frac{1}{d_u}\sqrt{\frac{d_u+1}{d_i+1}}   \qquad \text{(Eq. 9)}

    is imposed through a constraint loss (Eq. 11) merged with the BCE objective (Eq. 12) into
    one weighted BCE over positives :math:`\mathcal{N}^+` and sampled negatives
    :math:`\mathcal{N}^-_u` (Eq. 13, in the official code's form):

    .. math::
        \mathcal{L}_O = \sum_{(u,i)\in\mathcal{N}^+} \Big[-(w_1 + w_2\beta_{u,i})\ln\sigma(\mathbf{e}_u^\top\mathbf{e}_i)
            - \frac{\nu}{|\mathcal{N}^-_u|}\sum_{j\in\mathcal{N}^-_u}(w_3 + w_4\beta_{u,j})\ln\sigma(-\mathbf{e}_u^\top\mathbf{e}_j)\Big]

    with :math:`\nu` = ``negative_weight``. The item-item graph :math:`G = R^\top R` adds,
    over each positive item's top-K neighbours :math:`S(i)` by weight :math:`\omega_{i,j}`,

    .. math::
        \mathcal{L}_I = -\sum_{(u,i)\in\mathcal{N}^+}\sum_{j\in S(i)} \omega_{i,j}\ln\sigma(\mathbf{e}_u^\top\mathbf{e}_j),
        \qquad \omega_{i,j} = \frac{G_{i,j}}{g_i - G_{i,i}}\sqrt{\frac{g_i}{g_j}},\ g_i = \sum_k G_{i,k}
        \quad \text{(Eqs. 14-15)}

    The official code, which produced the paper's numbers, uses
    :math:`\omega_{i,j} = \frac{G_{i,j}}{g_i}\sqrt{\frac{g_i+1}{g_j+1}}` and keeps :math:`j=i`
    as a candidate; ``item_weighting`` picks ``"official"`` (default) or ``"paper"``.
    The objective is

    .. math::
        L = \mathcal{L}_O + \lambda\,\mathcal{L}_I + \gamma\,\tfrac{1}{2}\|\theta\|^2,

    summed (not averaged) over the batch, with the L2 term over *all* embeddings, as in the
    official code. Scores are plain inner products :math:`\mathbf{e}_u^\top\mathbf{e}_i`.

    Batches carry either ``num_negatives`` negatives per positive (``neg_items`` of shape
    (B, N), the faithful sampling; on CPU scored by :mod:`graphrec.kernels.pair_scores`
    without copying the (B, N, d) rows) or one shared set per batch (shape (1, N),
    ``batch.shared_negatives``), scored with one dense matmul. graphrec's per-positive
    sampler skips the user's train items; the official one (``sampling_sift_pos=no``) draws
    uniformly over all items, which differs in well under 1% of draws on these datasets.
    Shared negatives are uniform over all items, as the official sampler's.

    A plain ``nn.Module``; :meth:`prepare` builds :math:`\beta` and the item-item top-K
    (:func:`graphrec.kernels.item_similarity.item_item_topk`, never a dense items x items
    matrix) from the train interactions.

    Item images (optional, :meth:`attach_item_images`): an item's representation becomes
    :math:`\mathbf{e}_i + \mathbf{P}\,\phi(\text{image}_i)` everywhere it is scored (positives,
    negatives, item-item neighbours); the L2 term stays on the ID embeddings. Items without an image
    keep their ID embedding alone. Without images nothing changes.

    Args:
        num_users: number of users.
        num_items: number of items.
        embedding_dim: embedding size (paper: 64).
        init_std: std of the normal initialisation (official: 1e-4).
        w1, w2: positive weight :math:`w_1 + w_2\beta_{u,i}`.
        w3, w4: negative weight :math:`w_3 + w_4\beta_{u,j}`.
        negative_weight: :math:`\nu`, multiplies the mean negative term.
        item_constraint_weight: :math:`\lambda`, weight of :math:`\mathcal{L}_I`.
        l2_weight: :math:`\gamma`, weight of :math:`\frac12\|\theta\|^2`.
        num_item_neighbors: K of the item-item graph (paper: 10).
        item_weighting: ``"official"`` or ``"paper"`` item-item weights.
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, init_std: float = 1e-4,
                 w1: float = 1e-6, w2: float = 1.0, w3: float = 1e-6, w4: float = 1.0,
                 negative_weight: float = 300.0, item_constraint_weight: float = 5e-4, l2_weight: float = 1e-4,
                 num_item_neighbors: int = 10, item_weighting: str = "official"):
        super().__init__()
        if num_users < 1 or num_items < 1 or embedding_dim < 1:
            raise ValueError("num_users, num_items and embedding_dim must be >= 1")
        _validate(item_weighting, num_item_neighbors)
        self.num_users = num_users
        self.num_items = num_items
        self.w1, self.w2, self.w3, self.w4 = w1, w2, w3, w4
        self.negative_weight = negative_weight
        self.item_constraint_weight = item_constraint_weight
        self.l2_weight = l2_weight
        self.num_item_neighbors = num_item_neighbors
        self.item_weighting = item_weighting
        self.user_embedding = nn.Embedding(num_users, embedding_dim)
        self.item_embedding = nn.Embedding(num_items, embedding_dim)
        nn.init.normal_(self.user_embedding.weight, std=init_std)
        nn.init.normal_(self.item_embedding.weight, std=init_std)
        # Derived from the train interactions by prepare(); not saved in checkpoints.
        self.register_buffer("beta_user", torch.zeros(0), persistent=False)
        self.register_buffer("beta_item", torch.zeros(0), persistent=False)
        self.register_buffer("item_neighbors", torch.zeros(0, num_item_neighbors, dtype=torch.long),
                             persistent=False)
        self.register_buffer("item_neighbor_weights", torch.zeros(0, num_item_neighbors), persistent=False)
        self.item_image_encoder: nn.Module | None = None  # attach_item_images(); None: pure UltraGCN
        self.negative_scoring = "auto"  # or "fused" / "matmul" / "gather": see _negative_path

    def attach_item_images(self, encoder: nn.Module) -> "UltraGCN":
        """Add projected item-image features to every item's representation (see the class notes).

        ``encoder``: an :class:`~graphrec.encoders.ImageNodeEncoder` over the items (``num_items``
        nodes, ``out_dim`` = ``embedding_dim``), frozen or end to end.
        """
        from graphrec.models.lightgcn import _check_item_encoder

        _check_item_encoder(encoder, self.num_items, self.item_embedding.embedding_dim)
        self.item_image_encoder = encoder
        return self

    @property
    def item_embedding_dim(self) -> int:
        """Width of an item's representation (:class:`~graphrec.models.interfaces.ItemImageSupport`)."""
        return self.item_embedding.embedding_dim

    def _items(self, items: torch.Tensor) -> torch.Tensor:
        """Item representations of ``items`` (ID embedding, plus image features when attached)."""
        if self.item_image_encoder is None:
            return self.item_embedding(items)
        return self.item_embedding(items) + self.item_image_encoder(items)

    # ------------------------------------------------------------- recommender interface
    def prepare(self, train: sp.spmatrix) -> None:
        """Constraint coefficients and the item-item top-K of the train interactions (users x items)."""
        if train.shape != (self.num_users, self.num_items):
            raise ValueError(f"train matrix has shape {train.shape}, model expects "
                             f"({self.num_users}, {self.num_items})")
        device = self.user_embedding.weight.device
        beta_user, beta_item = constraint_coefficients(train)
        # The first parallel numba call starts numba's OpenMP pool, which resets torch's
        # thread count (train.num_threads) to all cores: keep the caller's setting.
        threads = torch.get_num_threads()
        neighbors, weights = item_item_topk(train, self.num_item_neighbors, self.item_weighting)
        torch.set_num_threads(threads)
        self.beta_user = torch.from_numpy(beta_user).float().to(device)
        self.beta_item = torch.from_numpy(beta_item).float().to(device)
        self.item_neighbors = torch.from_numpy(neighbors).to(device)
        self.item_neighbor_weights = torch.from_numpy(weights).to(device)

    def loss(self, batch) -> torch.Tensor:
        return self.recommendation_loss(batch.users, batch.pos_items, batch.neg_items,
                                        shared_negatives=getattr(batch, "shared_negatives", False))

    @torch.no_grad()
    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.item_image_encoder is not None:
            items = self.item_embedding.weight + self.item_image_encoder.all_features()
            return self.user_embedding.weight.detach(), items.detach()
        return self.user_embedding.weight.detach(), self.item_embedding.weight.detach()

    # ------------------------------------------------------------- plain-module API
    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores :math:`\\mathbf{e}_u^\\top\\mathbf{e}_i` of (user, item) pairs."""
        return (self.user_embedding(users) * self._items(items)).sum(-1)

    def recommendation_loss(self, users: torch.Tensor, pos_items: torch.Tensor, neg_items: torch.Tensor,
                            shared_negatives: bool = False) -> torch.Tensor:
        r""":math:`\mathcal{L}_O + \lambda\mathcal{L}_I + \gamma\frac12\|\theta\|^2` of a batch.

        ``neg_items``: (B, N) negatives per positive, or with ``shared_negatives`` a (1, N)
        or (N,) set shared by all B rows. Equal to the sum of :meth:`objective_loss`,
        :meth:`item_constraint_loss` and :meth:`norm_loss` (the readable reference), computed
        with one row gather per table whose backward also applies the L2 gradient, so each
        step makes one pass over the full tables instead of several.
        """
        self._check_prepared()
        batch = users.shape[0]
        if not shared_negatives and (neg_items.dim() != 2 or neg_items.shape[0] != batch):
            raise ValueError(f"neg_items must have shape (batch, num_negatives), got {tuple(neg_items.shape)}")
        neighbors = self.item_neighbors[pos_items]  # (B, K)
        images = self.item_image_encoder
        path = "shared" if shared_negatives else self._negative_path(neg_items)
        negatives = neg_items.reshape(-1) if path in ("shared", "gather") else neg_items.reshape(-1)[:0]
        user_e, user_sq = _RowsAndHalfSquaredNorm.apply(self.user_embedding.weight, users)
        item_e, item_sq = _RowsAndHalfSquaredNorm.apply(
            self.item_embedding.weight, torch.cat([pos_items, negatives, neighbors.reshape(-1)]))
        if images is not None:
            # one call for every item the batch touches: each distinct item is encoded once
            item_e = item_e + images(torch.cat([pos_items, negatives, neighbors.reshape(-1)]))
        pos_e, neg_e, neighbor_e = torch.split(item_e, [batch, negatives.shape[0], neighbors.numel()])

        beta_u = self.beta_user[users]
        pos_w = self.w1 + self.w2 * beta_u * self.beta_item[pos_items]
        pos_scores = (user_e * pos_e).sum(-1)
        if shared_negatives:
            neg_scores = user_e @ neg_e.t()  # (B, N): one dense matmul
            neg_w = self.w3 + self.w4 * beta_u.unsqueeze(1) * self.beta_item[negatives].unsqueeze(0)
        else:
            if path == "fused":
                neg_scores = _SampledPairScores.apply(user_e, self.item_embedding.weight, neg_items)
            elif path == "matmul":
                neg_scores = (user_e @ self.item_embedding.weight.t()).gather(1, neg_items)
            else:
                neg_scores = torch.bmm(neg_e.view(batch, -1, neg_e.shape[-1]), user_e.unsqueeze(-1)).squeeze(-1)
            neg_w = self.w3 + self.w4 * beta_u.unsqueeze(1) * self.beta_item[neg_items]
        objective = (pos_w * F.softplus(-pos_scores)
                     + self.negative_weight * (neg_w * F.softplus(neg_scores)).mean(-1)).sum()
        neighbor_scores = torch.bmm(neighbor_e.view(batch, -1, neighbor_e.shape[-1]),
                                    user_e.unsqueeze(-1)).squeeze(-1)
        item_constraint = -(self.item_neighbor_weights[pos_items] * F.logsigmoid(neighbor_scores)).sum()
        return objective + self.item_constraint_weight * item_constraint + self.l2_weight * (user_sq + item_sq)

    def _negative_path(self, neg_items: torch.Tensor) -> str:
        """How per-positive negatives are scored (all three give the same values and gradients).

        ``"fused"`` (CPU): :mod:`graphrec.kernels.pair_scores`, each score one dot product
        against a table row read in place; ``"matmul"``: score every item with one matmul and
        pick the (B, N) scores, cheaper than ``"gather"`` (a (B, N, d) copy of the rows) once
        N * d exceeds the item count. Item images always take ``"gather"``: their features
        exist only for the items asked for. ``negative_scoring`` forces a path.
        """
        weight = self.item_embedding.weight
        if self.item_image_encoder is not None:
            return "gather"
        if self.negative_scoring != "auto":
            return self.negative_scoring
        if weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.float64):
            return "fused"
        return "matmul" if neg_items.shape[1] * weight.shape[1] > self.num_items else "gather"

    def objective_loss(self, users: torch.Tensor, pos_items: torch.Tensor, neg_items: torch.Tensor,
                       shared_negatives: bool = False) -> torch.Tensor:
        r""":math:`\mathcal{L}_O`: weighted BCE over positives and their negatives, summed over the batch."""
        self._check_prepared()
        user_e = self.user_embedding(users)
        pos_scores = (user_e * self._items(pos_items)).sum(-1)
        beta_u = self.beta_user[users]
        pos_w = self.w1 + self.w2 * beta_u * self.beta_item[pos_items]
        if shared_negatives:
            neg_items = neg_items.reshape(-1)
            neg_scores = user_e @ self._items(neg_items).t()  # (B, N)
            neg_w = self.w3 + self.w4 * beta_u.unsqueeze(1) * self.beta_item[neg_items].unsqueeze(0)
        else:
            if neg_items.dim() != 2 or neg_items.shape[0] != users.shape[0]:
                raise ValueError(f"neg_items must have shape (batch, num_negatives), got {tuple(neg_items.shape)}")
            neg_e = self._items(neg_items)  # (B, N, d)
            neg_scores = torch.bmm(neg_e, user_e.unsqueeze(-1)).squeeze(-1)
            neg_w = self.w3 + self.w4 * beta_u.unsqueeze(1) * self.beta_item[neg_items]
        pos_loss = pos_w * F.softplus(-pos_scores)  # -ln sigmoid(s)
        neg_loss = (neg_w * F.softplus(neg_scores)).mean(-1)  # -ln sigmoid(-s)
        return (pos_loss + self.negative_weight * neg_loss).sum()

    def item_constraint_loss(self, users: torch.Tensor, pos_items: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathcal{L}_I`: each positive item's top-K neighbours as weighted positives of the user."""
        self._check_prepared()
        neighbor_e = self._items(self.item_neighbors[pos_items])  # (B, K, d)
        scores = torch.bmm(neighbor_e, self.user_embedding(users).unsqueeze(-1)).squeeze(-1)
        return -(self.item_neighbor_weights[pos_items] * F.logsigmoid(scores)).sum()

    def norm_loss(self) -> torch.Tensor:
        r""":math:`\frac12\|\theta\|^2` over all parameters (every embedding, not the batch's)."""
        # the ID tables only (all parameters without images): image encoders are not L2-penalised here
        return 0.5 * sum(p.pow(2).sum() for p in (self.user_embedding.weight, self.item_embedding.weight))

    def _check_prepared(self) -> None:
        if self.beta_user.shape[0] != self.num_users:
            raise RuntimeError("call model.prepare(train_matrix) before computing the loss")


class _RowsAndHalfSquaredNorm(torch.autograd.Function):
    """``(weight[index], ||weight||^2 / 2)`` with a backward that writes the table's gradient once.

    The same values and gradients as ``weight[index]`` plus ``0.5 * weight.pow(2).sum()``
    through autograd, which would zero-fill a dense gradient per lookup, build another for
    the norm and add them.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, index: torch.Tensor):
        ctx.save_for_backward(weight, index)
        flat = weight.reshape(-1)
        return weight.index_select(0, index), 0.5 * torch.dot(flat, flat)

    @staticmethod
    def backward(ctx, grad_rows, grad_norm):
        weight, index = ctx.saved_tensors
        grad = weight * grad_norm if grad_norm is not None else torch.zeros_like(weight)
        if grad_rows is not None:
            grad.index_add_(0, index, grad_rows)
        return grad, None


class _SampledPairScores(torch.autograd.Function):
    """``scores[b, n] = user_e[b] . weight[neg_items[b, n]]`` without gathering the (B, N, d) rows.

    The backward returns the table's gradient as a dense (I, d) tensor, as ``weight[index]``
    through autograd would; see :mod:`graphrec.kernels.pair_scores` for why and how fast.
    """

    @staticmethod
    def forward(ctx, user_e: torch.Tensor, weight: torch.Tensor, neg_items: torch.Tensor):
        user_e, neg_items = user_e.detach().contiguous(), neg_items.contiguous()
        weight = weight.detach()
        ctx.save_for_backward(user_e, weight, neg_items)
        return torch.from_numpy(pair_scores(user_e.numpy(), weight.numpy(), neg_items.numpy()))

    @staticmethod
    def backward(ctx, grad):
        user_e, weight, neg_items = ctx.saved_tensors
        grad = grad.contiguous().numpy()
        pairs = neg_items.numpy()
        grad_user = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_user = torch.from_numpy(pair_scores_user_grad(grad, weight.numpy(), pairs))
        if ctx.needs_input_grad[1]:
            grad_weight = torch.from_numpy(pair_scores_item_grad(grad, user_e.numpy(), pairs, weight.shape[0],
                                                                 max(1, nb.get_num_threads())))
        return grad_user, grad_weight, None


#: UltraGCN's hyper-parameters as a dataclass, derived from its constructor by the registry
UltraGCNConfig = get_model_entry("ultragcn").config_cls
