"""Ranking and classification metrics, and the evaluators that compute them."""
from graphrec.metrics.classification import accuracy, classification_metrics, macro_f1, micro_f1
from graphrec.metrics.ranking import RankingEvaluator, ranking_metrics_from_hits, top_k_items

__all__ = ["RankingEvaluator", "accuracy", "classification_metrics", "macro_f1", "micro_f1",
           "ranking_metrics_from_hits", "top_k_items"]
