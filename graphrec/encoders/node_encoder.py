"""``ImageNodeEncoder``: one backbone shared by every node of a type, projected to a graph model's width."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from graphrec.encoders.encoder import ImageEncoder, create_encoder
from graphrec.encoders.images import NodeImages
from graphrec.sampling.feature_store import FeatureStore

MODES = ("frozen", "end_to_end")


class ImageNodeEncoder(nn.Module):
    r"""Node features from node images: ``encoder(ids) -> (len(ids), out_dim)``.

    One backbone serves all nodes of a type (items, users, papers); a linear projection maps its
    features to the graph model's width. Nodes without an image get zeros (after the projection,
    so its bias does not leak in): a model adding these features to ID embeddings falls back to the
    ID embedding for them.

    ``mode="frozen"``: every node image is encoded once (:meth:`precompute`: batched, with a
    progress bar, channels-last, bf16 autocast where it is faster, the next batch loaded while
    the current one is encoded), cached on disk under ``cache_dir`` keyed by (backbone, weights,
    image size, compute dtype, storage dtype, images), and served through a
    :class:`~graphrec.sampling.FeatureStore`; only the projection trains. The backbone is then not a
    registered submodule: checkpoints hold the projection, the features come from the cache key.

    ``mode="end_to_end"``: each call encodes only the *unique* node ids it is given (a minibatch
    that touches an item 50 times runs the backbone on it once) and gradients flow into the backbone.
    ``unique=False`` encodes every occurrence (the naive baseline, for benchmarks). Same result in
    eval mode; in train mode a BatchNorm backbone normalises over the distinct images of the batch
    rather than over occurrences. Autocast is left to the training loop here.

    Args:
        encoder: an :class:`ImageEncoder` or a name for :func:`create_encoder` (its own projection,
            if any, is used as is; ``out_dim`` here adds the node projection).
        images: the nodes' :class:`NodeImages`; their normalisation is set to the encoder's.
        out_dim: width of the node features (None: the backbone's ``num_features``, no projection).
        mode: ``"frozen"`` or ``"end_to_end"``.
        batch_size: images per backbone call (frozen precompute, end-to-end evaluation).
        cache_dir: folder for frozen feature caches (None: memory only).
        storage_dtype: dtype of the frozen feature table (float32 or float16).
        autocast: ``"auto"`` (bf16 on CUDA when supported; on CPU only when a timed probe shows it
            faster), ``"bf16"`` or ``"off"``.
        channels_last: run the backbone in channels-last memory format.
        progress: show a progress bar while precomputing.
    """

    def __init__(self, encoder: ImageEncoder | str, images: NodeImages, out_dim: int | None = None,
                 mode: str = "frozen", batch_size: int = 64, cache_dir: str | os.PathLike | None = None,
                 storage_dtype: torch.dtype = torch.float32, autocast: str = "auto", channels_last: bool = True,
                 progress: bool = True, unique: bool = True, pretrained: bool = False):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if autocast not in ("auto", "bf16", "off"):
            raise ValueError("autocast must be 'auto', 'bf16' or 'off'")
        if storage_dtype not in (torch.float32, torch.float16):
            raise ValueError("storage_dtype must be float32 or float16 (the cache is a .npy file)")
        encoder = create_encoder(encoder, pretrained=pretrained) if isinstance(encoder, str) else encoder
        images.mean, images.std = encoder.mean, encoder.std
        self.images = images
        self.mode = mode
        self.batch_size = int(batch_size)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.storage_dtype = storage_dtype
        self.autocast = autocast
        self.channels_last = channels_last
        self.progress = progress
        self.unique = unique
        self.num_nodes = images.num_nodes
        self.feature_dim = encoder.out_dim
        self.out_dim = int(out_dim) if out_dim is not None else self.feature_dim
        self.projection = nn.Linear(self.feature_dim, out_dim) if out_dim is not None else nn.Identity()
        self.register_buffer("present", images.present.clone(), persistent=False)
        if mode == "end_to_end":
            self.encoder = encoder.to(memory_format=torch.channels_last) if channels_last else encoder
        else:
            # Not a submodule: frozen weights are not trained, not in checkpoints, not moved by .to().
            encoder.requires_grad_(False).eval()
            self.__dict__["encoder"] = encoder
        self.store: FeatureStore | None = None
        self.cache_path: Path | None = None
        self.compute_dtype: torch.dtype | None = None
        self.stats: dict = {}

    # ------------------------------------------------------------------ forward
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Features of nodes ``ids`` (any shape; repeats allowed): ``(*ids.shape, out_dim)``."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        shape = ids.shape
        ids = ids.reshape(-1)
        device = self._device()
        if self.mode == "frozen":
            store = self.feature_store()
            features = store.fetch(ids.cpu()).to(device=device, dtype=torch.float32, non_blocking=True)
            present = self.present[ids.to(self.present.device)].to(device)
        elif self.unique:
            unique, inverse = torch.unique(ids, return_inverse=True)
            features, present = self._encode_trainable(unique)
            features, present = features[inverse.to(device)], present[inverse.to(device)]
        else:
            features, present = self._encode_trainable(ids)
        out = self.projection(features) * present.unsqueeze(-1).to(features.dtype)
        return out.reshape(*shape, self.out_dim)

    def all_features(self) -> torch.Tensor:
        """Features of every node ``(num_nodes, out_dim)`` (end to end: encoded in batches; with
        gradients only when grad mode is on)."""
        if self.mode == "frozen" or torch.is_grad_enabled():
            return self.forward(torch.arange(self.num_nodes))
        return torch.cat([self.forward(torch.arange(start, min(start + self.batch_size, self.num_nodes)))
                          for start in range(0, self.num_nodes, self.batch_size)])

    def _device(self) -> torch.device:
        return self.present.device

    def _encode_trainable(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = self._device()
        images, present = self.images.load(ids.cpu())
        features = torch.zeros(ids.numel(), self.feature_dim, device=device)
        present = present.to(device)
        if bool(present.any()):
            images = images[present.cpu()].to(device, non_blocking=True)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            encoded = self.encoder(images)
            features = features.index_put((present.nonzero().view(-1),), encoded.float())
        return features, present

    # ------------------------------------------------------------------ frozen: precompute and cache
    def feature_store(self) -> FeatureStore:
        """The frozen feature table (computed, or read from the cache, on first use)."""
        if self.store is None:
            self.precompute()
        return self.store

    def cache_key(self, compute_dtype: torch.dtype) -> dict:
        enc = self.encoder
        return {"backbone": enc.name, "source": enc.source, "weights": enc.weights_tag,
                "weights_digest": enc.weights_digest(), "image_size": list(self.images.image_size),
                "compute_dtype": str(compute_dtype).replace("torch.", ""),
                "storage_dtype": str(self.storage_dtype).replace("torch.", ""),
                "images": self.images.fingerprint(), "feature_dim": self.feature_dim}

    @torch.no_grad()
    def precompute(self, device: str | torch.device | None = None) -> FeatureStore:
        """Encode every node image once (or read the cached table) and serve it as a FeatureStore."""
        if self.mode != "frozen":
            raise RuntimeError("precompute() is for mode='frozen'")
        device = torch.device(device) if device is not None else self._device()
        encoder = self.encoder.to(device).eval()
        if self.channels_last:
            encoder = encoder.to(memory_format=torch.channels_last)
        ids = self.present.cpu().nonzero().view(-1)
        compute_dtype = self._pick_compute_dtype(encoder, ids, device)
        path = None
        if self.cache_dir is not None:   # the key hashes weights and images: only worth it when caching
            import hashlib

            key = self.cache_key(compute_dtype)
            digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
            safe = key["backbone"].replace("/", "_")
            path = self.cache_dir / f"{safe}-{'x'.join(map(str, key['image_size']))}-{key['compute_dtype']}-{digest}.npy"
            if path.exists():
                self.store, self.cache_path, self.compute_dtype = FeatureStore.from_file(path), path, compute_dtype
                self.stats = {"cached": True, "path": str(path)}
                return self.store
        table = torch.zeros(self.num_nodes, self.feature_dim, dtype=self.storage_dtype)
        started = time.perf_counter()
        self._encode_into(encoder, ids, table, device, compute_dtype)
        seconds = time.perf_counter() - started
        self.stats = {"cached": False, "images": int(ids.numel()), "seconds": seconds,
                      "images_per_s": ids.numel() / seconds if seconds > 0 else float("inf"),
                      "compute_dtype": str(compute_dtype)}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(path.name + f".{os.getpid()}.tmp")
            with open(temp, "wb") as handle:
                np.save(handle, table.numpy())
            temp.replace(path)   # atomic: a concurrent reader sees the old state or the whole file
            path.with_suffix(".json").write_text(json.dumps(key, indent=2) + "\n")
            self.store, self.cache_path = FeatureStore.from_file(path), path
        else:
            self.store = FeatureStore(table)
        self.compute_dtype = compute_dtype
        return self.store

    def _batches(self, ids: torch.Tensor):
        """Yield ``(ids, images)`` with the next batch loaded in a thread while the caller encodes
        (file decoding and resizing release the GIL)."""
        chunks = [ids[start:start + self.batch_size] for start in range(0, ids.numel(), self.batch_size)]
        if not chunks:
            return
        # The loader thread gets the caller's torch thread count: a fresh thread starts with OpenMP's
        # default (all cores), and its idle OpenMP team would spin on cores the backbone is using.
        threads = torch.get_num_threads()
        with ThreadPoolExecutor(max_workers=1, initializer=torch.set_num_threads, initargs=(threads,)) as pool:
            pending = pool.submit(self.images.load, chunks[0])
            for number, chunk in enumerate(chunks):
                images, _ = pending.result()
                if number + 1 < len(chunks):
                    pending = pool.submit(self.images.load, chunks[number + 1])
                yield chunk, images

    def _encode_into(self, encoder, ids, table, device, compute_dtype) -> None:
        bar = _progress(ids.numel(), f"encoding the images of {ids.numel()}/{self.num_nodes} nodes with {encoder.name}",
                        enabled=self.progress)
        autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if compute_dtype == torch.bfloat16
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            for chunk, images in self._batches(ids):
                images = images.to(device, non_blocking=True)
                if self.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                features = encoder(images)
                table[chunk] = features.to("cpu", self.storage_dtype)
                bar.update(chunk.numel())
        bar.close()

    def _pick_compute_dtype(self, encoder, ids, device) -> torch.dtype:
        if self.autocast == "off" or ids.numel() == 0:
            return torch.float32
        if self.autocast == "bf16":
            return torch.bfloat16
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        # CPU: bf16 is only faster with native bf16 instructions (AMX / AVX512-BF16); time one batch.
        images, _ = self.images.load(ids[: min(self.batch_size, ids.numel())])
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        timings = {torch.float32: [], torch.bfloat16: []}
        with torch.inference_mode():
            for round_ in range(3):   # alternate, keep each dtype's fastest call: robust to a shared CPU
                for dtype in (torch.float32, torch.bfloat16):
                    context = (torch.autocast("cpu", dtype=torch.bfloat16) if dtype == torch.bfloat16
                               else contextlib.nullcontext())
                    with context:
                        started = time.process_time()
                        encoder(images)   # round 0 also creates the oneDNN primitives: not counted
                        if round_:
                            timings[dtype].append(time.process_time() - started)
        best = {dtype: min(values) for dtype, values in timings.items()}
        return torch.bfloat16 if best[torch.bfloat16] < 0.9 * best[torch.float32] else torch.float32


class _progress:
    """tqdm when installed, else a one-line stderr counter; silent when disabled."""

    def __init__(self, total: int, description: str, enabled: bool = True):
        self.total, self.done, self.description, self.bar = total, 0, description, None
        self.enabled = enabled and total > 0
        self.started = time.perf_counter()
        if self.enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=description, unit="img", file=sys.stderr)
            except ImportError:
                self.bar = None

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
        else:
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            print(f"\r{self.description}: {self.done}/{self.total} ({rate:.0f} img/s)", end="", file=sys.stderr)

    def close(self) -> None:
        if self.enabled:
            if self.bar is not None:
                self.bar.close()
            else:
                print(file=sys.stderr)


def create_node_encoder(name: str, images: NodeImages, out_dim: int | None = None, mode: str = "frozen",
                        pretrained: bool = False, encoder_kwargs: dict | None = None, **kwargs) -> ImageNodeEncoder:
    """``ImageNodeEncoder(create_encoder(name, pretrained=..., **encoder_kwargs), images, out_dim, mode, ...)``."""
    encoder = create_encoder(name, pretrained=pretrained, **(encoder_kwargs or {}))
    return ImageNodeEncoder(encoder, images, out_dim=out_dim, mode=mode, **kwargs)
