"""Planetoid citation graphs: Cora, CiteSeer, PubMed (node classification).

Files: the eight ``ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}`` of Yang, Cohen and
Salakhutdinov's ``kimiyoung/planetoid`` repository (``data/``), as published. All three
datasets share one flat folder, ``<data root>/planetoid/raw/`` (a ``subdir`` declaration),
so ``--data-dir /work/shared/data`` or ``GRAPHREC_DATA`` pointing at a folder holding
``planetoid/raw/`` finds them; missing files are downloaded from the public origin and
checked against their sha256.

Parsing is PyG's (:class:`torch_geometric.datasets.Planetoid`), not ours. PyG wants
``<root>/<Name>/raw/ind.<name>.*`` and writes ``<root>/<Name>/processed/``: the reader
builds that layout in a temporary folder out of symbolic links to the located files, so
the data is never copied and the data folder may be read-only. The processed cache is
thrown away on purpose: PyG would reuse it whatever the raw files are now, and
processing takes well under a second. The result is a PyG ``Data`` with ``x``,
``edge_index`` (both directions, no self-loops, no duplicates), ``y`` and the public
split's ``train_mask``/``val_mask``/``test_mask`` (20 per class / 500 / 1000).
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import tempfile
from pathlib import Path

from graphrec.loaders.files import DatasetNotFoundError, MalformedFileError
from graphrec.loaders.registry import DatasetSpec, register_dataset

ORIGIN = "https://raw.githubusercontent.com/kimiyoung/planetoid/master/data"
FOLDER = "planetoid/raw"
CITATION = ("Yang, Cohen, Salakhutdinov, Revisiting Semi-Supervised Learning with Graph Embeddings, ICML 2016 "
            "(splits); Sen et al. 2008 (Cora, CiteSeer); Namata et al. 2012 (PubMed)")
SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
#: registry name -> the name PyG's Planetoid expects
PYG_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}


def read_planetoid(paths: dict[str, Path], name: str):
    """Read one Planetoid dataset with PyG from the located ``ind.<name>.*`` files."""
    from torch_geometric.datasets import Planetoid

    missing = [str(path) for path in paths.values() if not Path(path).is_file()]
    if missing:
        raise DatasetNotFoundError(f"{name}: dataset files missing: {', '.join(missing)}")
    pyg_name = PYG_NAMES[name]
    with tempfile.TemporaryDirectory(prefix="graphrec-planetoid-") as root:
        raw = Path(root) / pyg_name / "raw"
        raw.mkdir(parents=True)
        for file_name, path in paths.items():
            os.symlink(Path(path).resolve(), raw / file_name)
        # PyG announces "Processing... Done!" on stderr; graphrec's own output stays clean.
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                dataset = Planetoid(root, pyg_name, split="public")
        except (EOFError, pickle.UnpicklingError, ValueError, IndexError, UnicodeDecodeError) as error:
            raise MalformedFileError(
                f"{_unreadable_file(paths) or name + ' files'} cannot be read ({type(error).__name__}: "
                f"{str(error)[:120]}): it is truncated or damaged; re-download it (delete it and run again) or "
                "check the checksum with `graphrec datasets --verify`") from None
        data = dataset[0]
    data.name = name
    return data


def _unreadable_file(paths: dict[str, Path]) -> Path | None:
    """The first of the pickled files that does not unpickle (the ones PyG reads with pickle)."""
    for file_name, path in paths.items():
        if file_name.endswith(".test.index"):
            continue
        try:
            with open(path, "rb") as handle:
                pickle.load(handle, encoding="latin1")
        except Exception:  # noqa: BLE001 - any failure means this is the damaged file
            return Path(path)
    return None


def _declare(name: str, digests: dict[str, str], stats: dict[str, int], description: str) -> None:
    files = {f"ind.{name}.{suffix}": (f"sha256:{digests[suffix]}",) for suffix in SUFFIXES}
    register_dataset(DatasetSpec(
        name=name, task="node_classification", files=files, reader=read_planetoid, url_base=ORIGIN,
        description=description, citation=CITATION, stats=stats, subdir=FOLDER,
    ))


# sha256 of the files of kimiyoung/planetoid@af6abf4 data/ (see shared/data/planetoid/SOURCE.md).
_declare("cora", {
    "x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
    "tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
    "allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
    "y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    "ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
    "ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
    "graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
    "test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
}, {"nodes": 2708, "edges": 10556, "features": 1433, "classes": 7, "train": 140, "valid": 500, "test": 1000},
    "Cora citation graph, Planetoid public split")
_declare("citeseer", {
    "x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
    "tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
    "allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
    "y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
    "ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
    "ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
    "graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
    "test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
}, {"nodes": 3327, "edges": 9104, "features": 3703, "classes": 6, "train": 120, "valid": 500, "test": 1000},
    "CiteSeer citation graph, Planetoid public split")
_declare("pubmed", {
    "x": "fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33",
    "tx": "4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d",
    # Not in the shared snapshot (over its size limit); digest from the official file's Git LFS
    # pointer in D61-IA/FisherGCN, whose x/tx pointers match the official x/tx exactly.
    "allx": "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e",
    "y": "e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3",
    "ty": "ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd",
    "ally": "0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e",
    "graph": "5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9",
    "test.index": "b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5",
}, {"nodes": 19717, "edges": 88648, "features": 500, "classes": 3, "train": 60, "valid": 500, "test": 1000},
    "PubMed diabetes citation graph, Planetoid public split")
