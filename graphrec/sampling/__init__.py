"""Minibatch samplers: what each training step sees.

One protocol (:mod:`graphrec.sampling.base`): a :class:`Sampler` builds a minibatch from its seeds
(``sample``), a :class:`SeedSchedule` gives each batch of an epoch its seeds, and every sampler's
``loader(epoch=, start=, num_workers=)`` walks an epoch from any batch without drawing the skipped ones.
"""
from graphrec.data.csr import CSRGraph, bipartite_adjacency  # re-exported: their home before graphrec.data
from graphrec.sampling.base import NodeSeeds, Sampler, SeedSchedule, batch_seed, sample_batches
from graphrec.sampling.bpr import BPRBatch, BPRSampler
from graphrec.sampling.feature_store import FeatureStore, Prefetcher
from graphrec.sampling.link import LinkNeighborSampler
from graphrec.sampling.neighbor import NeighborSampler

__all__ = ["BPRBatch", "BPRSampler", "CSRGraph", "FeatureStore", "LinkNeighborSampler", "NeighborSampler",
           "NodeSeeds", "Prefetcher", "Sampler", "SeedSchedule", "batch_seed", "bipartite_adjacency",
           "sample_batches"]
