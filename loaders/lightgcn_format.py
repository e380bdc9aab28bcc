"""LightGCN-format recommendation datasets: Gowalla, Yelp2018, Amazon-Book.

Format (the NGCF/LightGCN authors' ``Data/<name>/``): ``train.txt`` and ``test.txt``,
one line per user, ``user item item ...``, 0-based ids, space separated. Trailing
whitespace, blank lines and users without items (a real case in Amazon-Book's
test.txt) are accepted; any other deviation is a :class:`MalformedFileError` naming
the file, line and token.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from graphrec.data.interactions import InteractionGraph, interaction_matrix
from graphrec.loaders.files import MalformedFileError
from graphrec.loaders.registry import DatasetSpec, register_dataset

ORIGIN = "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data"
CITATION = "He et al., LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation, SIGIR 2020"


def read_user_item_lists(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Parse one LightGCN-format file into (users, items, max user id + 1)."""
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    max_user = -1
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("ascii")
            except UnicodeDecodeError as error:
                raise MalformedFileError(
                    f"{path}, line {line_no}: byte {raw[error.start:error.start + 1]!r} is not text "
                    "(expected 'user item item ...' in ASCII digits)") from None
            tokens = line.split()
            if not tokens:
                continue
            bad = next((t for t in tokens if not _is_int(t)), None)
            if bad is not None:
                raise MalformedFileError(
                    f"{path}, line {line_no}: token {bad!r} is not an integer id "
                    "(expected 'user item item ...', space separated)"
                )
            ids = [int(token) for token in tokens]
            negative = next((t for t, v in zip(tokens, ids) if v < 0), None)
            if negative is not None:
                raise MalformedFileError(f"{path}, line {line_no}: negative id {negative!r}")
            user, line_items = ids[0], ids[1:]
            max_user = max(max_user, user)
            if line_items:
                users.append(np.full(len(line_items), user, dtype=np.int64))
                items.append(np.asarray(line_items, dtype=np.int64))
    if max_user < 0:
        raise MalformedFileError(f"{path}: no user lines found")
    if not users:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), max_user + 1
    return np.concatenate(users), np.concatenate(items), max_user + 1


def _is_int(token: str) -> bool:
    # Stricter than int(): no underscores ("1_0"), no "+", ASCII digits only.
    digits = token[1:] if token.startswith("-") else token
    return digits.isascii() and digits.isdigit()


def read_lightgcn_dataset(paths: dict[str, Path], name: str) -> InteractionGraph:
    train_u, train_i, train_users = read_user_item_lists(paths["train.txt"])
    test_u, test_i, test_users = read_user_item_lists(paths["test.txt"])
    num_users = max(train_users, test_users)
    num_items = int(max(train_i.max(initial=-1), test_i.max(initial=-1))) + 1
    graph = InteractionGraph(
        num_users=num_users,
        num_items=num_items,
        train=interaction_matrix(train_u, train_i, num_users, num_items),
        test=interaction_matrix(test_u, test_i, num_users, num_items),
        name=name,
    )
    graph.warn_unseen_items()
    return graph


def _declare(name: str, files: dict[str, tuple[str, ...]], stats: dict[str, int], description: str):
    register_dataset(DatasetSpec(
        name=name, task="recommendation", files=files, reader=read_lightgcn_dataset,
        url_base=f"{ORIGIN}/{name}", description=description, citation=CITATION, stats=stats,
    ))


_declare(
    "gowalla",
    {
        "train.txt": ("sha256:7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62",),
        "test.txt": ("sha256:099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3",),
    },
    {"users": 29858, "items": 40981, "train": 810128, "test": 217242},
    "Gowalla check-ins, LightGCN/NGCF 10-core split",
)
_declare(
    "yelp2018",
    {
        # The official train.txt (sha256 from its Git LFS pointer) and a documented rebuild
        # with the same user-item pairs, items sorted per line (see shared/data/yelp2018/SOURCE.md).
        "train.txt": (
            "sha256:1e9568725a9e833d0ac3bae01c94cd95367f73b3bb6104fd26b5f65ea5054093",
            "sha256:5588ebbcbf9ab10cdf7a70aa300f2ef781030daa2a94ef0685598ed051a398da",
        ),
        "test.txt": ("sha256:9cd9b37926cd1447a06625ffa7914527573fb097c10cb0bbdb1d1b8ded3742fe",),
    },
    {"users": 31668, "items": 38048, "train": 1237259, "test": 324147},
    "Yelp 2018 challenge, LightGCN/NGCF 10-core split",
)
_declare(
    "amazon-book",
    {
        # Only md5s are published for these files (reczoo/Datasets AmazonBooks_m1).
        "train.txt": ("md5:c916ecac04ca72300a016228258b41ed",),
        "test.txt": ("md5:30f8ccfea18d25007ba9fb9aba4e174d",),
    },
    {"users": 52643, "items": 91599, "train": 2380730, "test": 603378},
    "Amazon reviews (books), LightGCN/NGCF 10-core split",
)
