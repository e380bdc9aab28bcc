"""Heterogeneous node-classification graphs in HeCo's packaging: ACM and Freebase.

HeCo (Wang, Liu, Han, Shi, KDD 2021; GitHub ``liun-online/HeCo``, ``data/<name>/``) ships every
dataset as the same handful of files, so a dataset here is one :class:`HeCoLayout` declaration:

- ``labels.npy``: the target type's class per node;
- one ``<t><o>.txt`` per relation, ``"target_id other_id"`` lines, 0-based per type (``pa.txt``:
  paper-author);
- ``<t>_feat.npz`` (scipy sparse) for the types that have features (ACM: papers, and authors:
  the words of their papers, a file HeCo ships but its own loader leaves unused; subjects and
  every Freebase type have none and get learned embeddings in the models), read as 0/1;
- ``{train,val,test}_{20,40,60}.npy``: the labels-per-class splits (20/40/60 labelled nodes of
  every class for train, 1000 valid, 1000 test; the valid/test sets differ between the three).

The reader returns a PyG ``HeteroData``: ``data[t].num_nodes`` for every type, ``data[t].x``
(float32, dense) for featured types, both directions of every relation as
``(target, "to", other)`` and ``(other, "to", target)`` edge types, ``data[target].y`` and the
split masks ``data[target].train_mask_20`` / ``val_mask_20`` / ``test_mask_20`` (and 40, 60).
``data.target_node_type`` names the labelled type and ``data.label_splits`` the shipped splits.

Adding another HeCo-format dataset is one :func:`_declare` call below. The meta-path matrices
(``pap.npz``, ...) and HeCo's contrastive files are not read: models build the meta-paths they
need from the relations.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from graphrec.loaders.files import DatasetNotFoundError, MalformedFileError
from graphrec.loaders.registry import DatasetSpec, register_dataset

ORIGIN = None  # HeCo's files live in its GitHub repository (no stable raw URL is promised): no download
CITATION = ("Wang, Liu, Han, Shi, Self-supervised Heterogeneous Graph Neural Network with Co-contrastive "
            "Learning, KDD 2021 (packaging, splits)")
LABEL_SPLITS = (20, 40, 60)
TASK = "hetero_node_classification"


@dataclass(frozen=True)
class HeCoLayout:
    """Which files make one HeCo dataset: the target type, its relations and featured types."""

    target: str
    #: other node type -> relation file ("pa.txt": target id, other id per line)
    relations: dict[str, str]
    #: node type -> feature file (scipy sparse npz); absent types get no ``x``
    features: dict[str, str]
    #: read features as 0/1 (non-zero -> 1): HeCo stores ACM's 0/1 bag of words row-normalised
    #: (every non-zero of a paper row is exactly 1/nnz), which leaves inputs of about 0.01 that
    #: slow every model's first layer down; the 0/1 words are recovered exactly
    binary_features: bool = True


LAYOUTS: dict[str, HeCoLayout] = {}


def read_heco(paths: dict[str, Path], name: str):
    """Read one HeCo-format dataset into a PyG ``HeteroData`` (see the module docstring)."""
    import scipy.sparse as sp
    from torch_geometric.data import HeteroData

    missing = [str(path) for path in paths.values() if not Path(path).is_file()]
    if missing:
        raise DatasetNotFoundError(f"{name}: dataset files missing: {', '.join(missing)}")
    layout = LAYOUTS[name]
    labels = np.load(paths["labels.npy"]).astype(np.int64).reshape(-1)
    num_target = labels.shape[0]
    data = HeteroData()
    data[layout.target].num_nodes = num_target
    data[layout.target].y = torch.from_numpy(labels)
    for other, file_name in layout.relations.items():
        pairs = np.loadtxt(paths[file_name], dtype=np.int64, ndmin=2)
        if pairs.shape[1] != 2:
            raise MalformedFileError(f"{paths[file_name]}: expected 'target_id other_id' lines")
        if pairs[:, 0].max() >= num_target or pairs.min() < 0:
            raise MalformedFileError(f"{paths[file_name]}: ids out of range for {num_target} {layout.target} nodes")
        pairs = np.unique(pairs, axis=0)
        data[other].num_nodes = int(pairs[:, 1].max()) + 1
        forward = torch.from_numpy(np.ascontiguousarray(pairs.T))
        data[layout.target, "to", other].edge_index = forward
        data[other, "to", layout.target].edge_index = forward.flip(0).contiguous()
    for node_type, file_name in layout.features.items():
        x = sp.load_npz(paths[file_name]).tocsr().astype(np.float32)
        if layout.binary_features:
            x.eliminate_zeros()
            x.data[:] = 1.0
        if x.shape[0] != data[node_type].num_nodes:
            raise MalformedFileError(f"{paths[file_name]}: {x.shape[0]} rows for {data[node_type].num_nodes} "
                                     f"{node_type} nodes")
        data[node_type].x = torch.from_numpy(x.toarray())
    for count in LABEL_SPLITS:
        for split, prefix in (("train", "train"), ("val", "val"), ("test", "test")):
            index = torch.from_numpy(np.load(paths[f"{prefix}_{count}.npy"]).astype(np.int64).reshape(-1))
            mask = torch.zeros(num_target, dtype=torch.bool)
            mask[index] = True
            data[layout.target][f"{split}_mask_{count}"] = mask
    data.target_node_type = layout.target
    data.label_splits = LABEL_SPLITS
    data.name = name
    return data


def _declare(name: str, layout: HeCoLayout, digests: dict[str, str], stats: dict[str, int],
             description: str) -> None:
    LAYOUTS[name] = layout
    files = {file_name: (f"sha256:{digest}",) for file_name, digest in digests.items()}
    register_dataset(DatasetSpec(name=name, task=TASK, files=files, reader=read_heco, url_base=ORIGIN,
                                 description=description, citation=CITATION, stats=stats,
                                 subdir=f"hetero/{name}"))


# sha256 from shared/data/hetero/<name>/SOURCE.md (HeCo @ 20e8ca2042838877b2c815279920218b6bbea1db).
_declare("acm", HeCoLayout(target="paper", relations={"author": "pa.txt", "subject": "ps.txt"},
                           features={"paper": "p_feat.npz", "author": "a_feat.npz"}), {
    "labels.npy": "019284b3e6a58fc8ebd432fb99aaaf183ad41dbf56b8ca7af0b56dca9dd844b5",
    "pa.txt": "e67385fc13c3b3b624d81de7eb6e4245d9aeafa063c5466c6fab0f151bcb84d6",
    "ps.txt": "3da7615ef5567c5f7f1ab9ec770c4b4b8b6a54790baa1cda3d4499329dfc22d5",
    "p_feat.npz": "9e1019dfceaaabb19ee5b5f09de3147ffbaa818b43c3fc3f92bdfaf4ed5f02f4",
    "a_feat.npz": "e2f2ac8d357310149fc7badbf32ea0b171dec25aad6c37ec45de592666c65555",
    "test_20.npy": "eb90e38c882009c6439d749d160d39ed64f8813e9f672c02be54993914934afa",
    "test_40.npy": "f73d7e23459dd654a7567ee8bf123849f400096f8fac558dc37033d3fdc11aa6",
    "test_60.npy": "5181ccdeacc54b88ed53681ba9f2c789cc6d67a499f40a68ac6827a96932b976",
    "train_20.npy": "6bf4c1cef638f3ffe1826091b9be7fbff23a4935dfbde03c24b492d264d67684",
    "train_40.npy": "98239282e69e9775a9b13bc54598cc780eca31dcaeb81963efbbd4c6c3e51435",
    "train_60.npy": "5b86f56415b84d1faa8c8f864cd37272589ec4ffff1b0ca347d4c39ee38dcc02",
    "val_20.npy": "4280dccb661a50196502a39973a462919399fcfcd97b1d43581dfa9ca02d1b5d",
    "val_40.npy": "19fb1e72b76bc24da95423d1a83583a42fe5b62d69b2b197312f630ff5096202",
    "val_60.npy": "e234b6c1e19445ed6cc3694a273b943bbded8e847a9d0246f18d59f76fb8cd5d",
}, {"paper": 4019, "author": 7167, "subject": 60, "paper-author": 13407, "paper-subject": 4019, "classes": 3},
    "ACM paper/author/subject (HeCo), 20/40/60 labels per class")

_declare("freebase", HeCoLayout(target="movie", relations={"actor": "ma.txt", "director": "md.txt",
                                                            "writer": "mw.txt"}, features={}), {
    "labels.npy": "2410a09263b9d82e4bc58c36e4499ae8c5e2aa09011f71f5bbb73fda43bcf1fe",
    "ma.txt": "058903c3ad171bbe4d9cf15d93f2aa5b3d2086ae0d2e0fd7b99e3e81632d1c5e",
    "md.txt": "dbe17829c81248a4103f5e9cb7b1cab8aa1308ee28f1465b10ac893a897d772f",
    "mw.txt": "866ff0bc4e263885f593ee72e4393445eb0d9f471db9eb2932780374b4467c9b",
    "test_20.npy": "a9db7585f6b3090e73560a166a1e2f6e65fc031ac41431d82e51d7a550e08aed",
    "test_40.npy": "7a2527b316fb8c1e9271ab0a23e54a55d345b00c9563a71fa57d55516eb8af40",
    "test_60.npy": "ac1dc9e45d960b1410bc29eae0de3f2cc617b714906644100abc5e1cba80c92a",
    "train_20.npy": "55a5d0bca0420b29fa429b1df7651e0d9db52e6162b91ab7060a172cea0140de",
    "train_40.npy": "83ee2b96cde50c8089af998b3b460adb3f876db49a75cb2c4801ba796788568e",
    "train_60.npy": "c602957fafcbcceaafc0ed679aa2677a9d96e401cb678b51e87617304c271c6d",
    "val_20.npy": "d97aef24309f9abfa47d7d969f0a4f9b677ef2e79959f618a7a2276f9b2caaf3",
    "val_40.npy": "a0e069572440c844438b4a9f3c82faaee501a49b429875d525a0368f4b71aac1",
    "val_60.npy": "49cd65ed8465889ed8d99cbb5af44d86ba580722d2ed33e4485b7600bf3a3071",
}, {"movie": 3492, "actor": 33401, "director": 2502, "writer": 4459, "classes": 3},
    "Freebase movie/actor/director/writer (HeCo), 20/40/60 labels per class, no features")
