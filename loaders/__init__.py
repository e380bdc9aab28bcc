"""Dataset registry and readers (shipped as ``graphrec.loaders``).

A dataset is a small declaration (:class:`DatasetSpec`): its files with checksums,
where they come from, and the reader that turns them into a graph. Adding a dataset
is one small file that calls :func:`register_dataset`.
"""
from graphrec.loaders.registry import (
    DatasetSpec,
    available_datasets,
    get_dataset_spec,
    load_dataset,
    register_dataset,
)
from graphrec.loaders.files import DatasetNotFoundError, MalformedFileError, resolve_data_root

# Importing the declarations registers them.
from graphrec.loaders import lightgcn_format  # noqa: F401  (registers gowalla, yelp2018, amazon-book)
from graphrec.loaders import planetoid  # noqa: F401  (registers cora, citeseer, pubmed)
from graphrec.loaders import catgcn_format  # noqa: F401  (registers nba, income, catgcn-synthetic)
from graphrec.loaders import hetero  # noqa: F401  (registers acm, freebase: HeCo's heterogeneous graphs)

__all__ = [
    "DatasetSpec", "DatasetNotFoundError", "MalformedFileError", "available_datasets",
    "get_dataset_spec", "load_dataset", "register_dataset", "resolve_data_root",
]
