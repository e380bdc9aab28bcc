"""Node images: which image belongs to which node, loaded and normalised on demand.

Sources: an in-memory tensor ``(N, C, H, W)``, a folder of files named by node id
(``<folder>/<node id>.<png|jpg|...>``), or a table (CSV/TSV) of ``node,path`` rows. Nodes without an
image are allowed: :meth:`NodeImages.has_image` says which, and models fall back to their ID
embeddings for them.
"""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class NodeImages:
    """The images of ``num_nodes`` nodes of one type, as ``(3, size, size)`` float tensors.

    ``load(ids)`` returns ``(images, present)``: the normalised images of ``ids`` (zeros where a
    node has no image) and a boolean mask of the nodes that have one. ``mean``/``std`` are the
    normalisation of the encoder's weights (set by :class:`~graphrec.encoders.ImageNodeEncoder`).
    """

    def __init__(self, num_nodes: int, paths: Sequence[str | None] | None = None, tensor: torch.Tensor | None = None,
                 image_size: int | tuple[int, int] = 224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        if (paths is None) == (tensor is None):
            raise ValueError("give either paths or tensor")
        self.num_nodes = int(num_nodes)
        self.paths = list(paths) if paths is not None else None
        self.tensor = tensor
        if self.paths is not None and len(self.paths) != self.num_nodes:
            raise ValueError(f"{len(self.paths)} paths for {self.num_nodes} nodes")
        if tensor is not None and tensor.shape[0] != self.num_nodes:
            raise ValueError(f"image tensor has {tensor.shape[0]} rows for {self.num_nodes} nodes")
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.mean, self.std = tuple(mean), tuple(std)
        present = [p is not None for p in self.paths] if self.paths is not None else [True] * self.num_nodes
        self.present = torch.tensor(present, dtype=torch.bool)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_tensor(cls, images: torch.Tensor, image_size=None, normalized: bool = False, **kwargs) -> "NodeImages":
        """In-memory images ``(N, C, H, W)``: uint8 (0..255) or float in [0, 1]; C = 1 is repeated to 3.
        ``normalized=True``: already normalised, used as is (only resized)."""
        if images.dim() != 4:
            raise ValueError("images must be a (N, C, H, W) tensor")
        size = image_size if image_size is not None else tuple(images.shape[-2:])
        out = cls(images.shape[0], tensor=images, image_size=size, **kwargs)
        out.prenormalized = normalized
        return out

    @classmethod
    def from_folder(cls, folder, num_nodes: int | None = None, node_ids: Sequence | None = None,
                    image_size=224, **kwargs) -> "NodeImages":
        """Files named by node id: ``<folder>/<id>.<ext>``. ``node_ids[i]`` is node ``i``'s id (default:
        ``0..num_nodes-1``, e.g. an :class:`~graphrec.data.idmap.IdMap`'s ids); nodes without a file
        have no image. Files whose stem is no node id are an error (they are usually a naming mistake)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder {folder} does not exist")
        files = {p.stem: p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        if node_ids is None:
            if num_nodes is None:
                raise ValueError("give num_nodes or node_ids")
            node_ids = range(num_nodes)
        keys = [str(n) for n in node_ids]
        unknown = sorted(set(files) - set(keys))
        if unknown:
            raise ValueError(f"{len(unknown)} image file(s) in {folder} are named by no node id, e.g. "
                             f"{', '.join(unknown[:3])}")
        paths = [str(files[k]) if k in files else None for k in keys]
        return cls(len(keys), paths=paths, image_size=image_size, **kwargs)

    @classmethod
    def from_table(cls, table, num_nodes: int | None = None, node_ids: Sequence | None = None,
                   image_size=224, **kwargs) -> "NodeImages":
        """A CSV/TSV of ``node,path`` rows (a first row whose first field is no node id is a header).
        Relative paths are relative to the table's folder."""
        table = Path(table)
        delimiter = "\t" if table.suffix.lower() in (".tsv", ".tab") else ","
        with open(table, newline="") as handle:
            rows = [r for r in csv.reader(handle, delimiter=delimiter) if r]
        if node_ids is None:
            if num_nodes is None:
                raise ValueError("give num_nodes or node_ids")
            node_ids = range(num_nodes)
        index = {str(n): i for i, n in enumerate(node_ids)}
        if rows and rows[0][0] not in index:
            rows = rows[1:]   # a header row ("node,path"): its first field is no node id
        paths: list[str | None] = [None] * len(index)
        for row in rows:
            if len(row) < 2 or row[0] not in index:
                raise ValueError(f"{table}: row {row!r} does not name a node id and a path")
            path = Path(row[1]) if os.path.isabs(row[1]) else table.parent / row[1]
            if not path.is_file():
                raise FileNotFoundError(f"{table}: image {path} of node {row[0]} does not exist")
            paths[index[row[0]]] = str(path)
        return cls(len(index), paths=paths, image_size=image_size, **kwargs)

    @classmethod
    def from_path(cls, path, **kwargs) -> "NodeImages":
        """A folder (files named by node id) or a table of paths, as ``--images PATH`` takes."""
        return cls.from_folder(path, **kwargs) if Path(path).is_dir() else cls.from_table(path, **kwargs)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self.num_nodes

    def has_image(self, ids=None) -> torch.Tensor:
        return self.present if ids is None else self.present[torch.as_tensor(ids, dtype=torch.long)]

    def load(self, ids) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images (len(ids), 3, H, W) float32 normalised, present (len(ids),) bool)``."""
        ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
        present = self.present[ids]
        if self.tensor is not None:
            first = int(ids[0]) if ids.numel() else 0
            if ids.numel() and bool((ids == torch.arange(first, first + ids.numel())).all()):
                rows = self.tensor[first:first + ids.numel()]   # a run of ids (precompute): a view, no copy
            else:
                rows = self.tensor[ids]
            images = self._prepare(rows, already_normalized=getattr(self, "prenormalized", False))
            return images, present
        out = torch.zeros(ids.numel(), 3, *self.image_size)
        for row, node in enumerate(ids.tolist()):
            if self.paths[node] is not None:
                out[row] = self._prepare(_read_image(self.paths[node]).unsqueeze(0))[0]
        return out, present

    def _prepare(self, images: torch.Tensor, already_normalized: bool = False) -> torch.Tensor:
        images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if tuple(images.shape[-2:]) != self.image_size:
            images = F.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False, antialias=True)
        if already_normalized:
            return images.contiguous()
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return ((images - mean) / std).contiguous()

    def fingerprint(self) -> str:
        """A hash of what the images are (file names, sizes and mtimes, or the tensor's bytes), the
        image size and normalisation: part of the frozen-feature cache key."""
        digest = hashlib.blake2b(repr((self.num_nodes, self.image_size, self.mean, self.std,
                                       getattr(self, "prenormalized", False))).encode(), digest_size=16)
        if self.tensor is not None:
            # Two fixed random projections of every image instead of hashing all bytes: one matmul pass,
            # far cheaper than a byte hash on a large tensor; any real change of an image moves them.
            flat = self.tensor.detach().cpu().reshape(self.num_nodes, -1).float()
            probe = torch.randn(flat.shape[1], 2, generator=torch.Generator().manual_seed(0))
            digest.update(repr((tuple(self.tensor.shape), str(self.tensor.dtype))).encode())
            digest.update((flat @ probe).numpy().tobytes())
        else:
            for path in self.paths:
                if path is None:
                    digest.update(b"-")
                else:
                    stat = os.stat(path)
                    digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]


def _read_image(path: str) -> torch.Tensor:
    """An image file as a ``(3, H, W)`` uint8 tensor (Pillow, imported here: only folder/table sources need it)."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading image files needs Pillow: `pip install graphrec[vision]` (or pillow)") from None
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)
