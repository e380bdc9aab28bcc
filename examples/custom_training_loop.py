"""LightGCN as a plain nn.Module in your own training loop (no graphrec Trainer).

    GRAPHREC_DATA=../shared/data python examples/custom_training_loop.py
"""
import torch

from graphrec.loaders import load_dataset
from graphrec.metrics import RankingEvaluator
from graphrec.models import LightGCN, NormalizedAdjacency
from graphrec.sampling import BPRSampler

graph = load_dataset("gowalla")                       # InteractionGraph: train/test CSR matrices
adjacency = NormalizedAdjacency.from_interactions(graph.train)
model = LightGCN(graph.num_users, graph.num_items, embedding_dim=64, num_layers=3)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # one kernel per step, as the Trainer does
sampler = BPRSampler(graph.train, batch_size=2048, seed=0)
evaluator = RankingEvaluator(exclude=graph.train, targets=graph.test, ks=(20,))

for epoch in range(2):
    for step, batch in enumerate(sampler.loader(epoch)):
        loss = model.recommendation_loss(batch.users, batch.pos_items, batch.neg_items, adjacency)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 50:  # keep the example short
            break
    with torch.no_grad():
        users, items = model(adjacency)
    print(epoch, evaluator.evaluate(users, items))
