"""Distributed training on ``torch.distributed``: GNNPipe (layer-pipelined full-graph training of deep
GNNs), graph parallelism (METIS partitions + halo exchange), their hybrid, and DDP for recommenders.

Entry points: ``graphrec fit --nproc N --parallel pipe|graph|hybrid`` (or ``torchrun ... -m graphrec fit``),
:class:`~graphrec.parallel.engine.PipelineEngine` from Python, :mod:`graphrec.parallel.scenarios` for
scripted runs. Design and measurements: docs/parallel.md.
"""
from graphrec.parallel.comm import Comm, PeerFailure
from graphrec.parallel.engine import MODES, ParallelConfig, PipelineEngine

__all__ = ["Comm", "MODES", "ParallelConfig", "PeerFailure", "PipelineEngine"]
