"""Graphs in memory: interaction graphs, CSR adjacencies, id maps and splits."""
from graphrec.data.csr import CSRGraph, bipartite_adjacency
from graphrec.data.idmap import IdMap
from graphrec.data.interactions import InteractionGraph
from graphrec.data.splits import per_user_split, planetoid_random_split, split_by_time, stratified_split

__all__ = ["CSRGraph", "IdMap", "InteractionGraph", "bipartite_adjacency", "per_user_split",
           "planetoid_random_split", "split_by_time", "stratified_split"]
