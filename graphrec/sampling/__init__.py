"""Minibatch samplers: what each training step sees."""
from graphrec.data.csr import CSRGraph, bipartite_adjacency  # re-exported: their home before graphrec.data
from graphrec.sampling.bpr import BPRBatch, BPRSampler
from graphrec.sampling.feature_store import FeatureStore, Prefetcher
from graphrec.sampling.link import LinkNeighborSampler
from graphrec.sampling.neighbor import NeighborSampler

__all__ = ["BPRBatch", "BPRSampler", "CSRGraph", "FeatureStore", "LinkNeighborSampler", "NeighborSampler",
           "Prefetcher", "bipartite_adjacency"]
