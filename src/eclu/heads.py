"""Clustering heads: small models trained on frozen embeddings to cluster them.

A head maps an embedding to a probability over ``n_clusters`` clusters. It
is trained so that an embedding and its nearest neighbours get the same
cluster while all clusters stay in use, in the spirit of SCAN
(neighbour consistency plus an entropy term on the mean assignment) and
TEMI (a pointwise-mutual-information loss that divides by the running
cluster marginals). Several heads are trained at once and the one with the
lowest loss is kept.

Several embedding spaces of the same images (one per backbone) can be
clustered together: each space gets its own heads, and the heads of
different spaces are also trained to agree on every image, in the spirit
of TURTLE.

Training runs on the CPU with PyTorch; nearest neighbours are mined with
FAISS. Everything random draws from generators seeded by ``random_state``,
and no global random state is touched.
"""

from __future__ import annotations

import logging
from numbers import Integral
from typing import Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["ClusteringHead", "HEAD_LOSSES", "mine_neighbors"]

#: Training losses of :class:`ClusteringHead`.
HEAD_LOSSES = ("pmi", "scan")


def mine_neighbors(X: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Return the indices of each row's nearest neighbours by cosine similarity.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Embeddings; rows are L2-normalised here, so similarity is cosine.
    n_neighbors : int
        Neighbours per row, excluding the row itself. Clamped to
        ``n_samples - 1``.

    Returns
    -------
    ndarray of shape (n_samples, n_neighbors) of int64
        Neighbour indices, most similar first.
    """
    import faiss

    from .conditioning import l2_normalize

    X = np.ascontiguousarray(l2_normalize(X), dtype=np.float32)
    n = len(X)
    k = int(min(n_neighbors, n - 1))
    if k < 1:
        return np.zeros((n, 0), dtype=np.int64)
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    _, found = index.search(X, k + 1)
    neighbors = np.empty((n, k), dtype=np.int64)
    for row in range(n):
        # Identical embeddings may push a row out of its own first slot, so the
        # row is removed wherever it appears instead of dropping column 0.
        others = found[row][found[row] != row]
        neighbors[row] = others[:k]
    return neighbors


class ClusteringHead(ClusterMixin, BaseEstimator):
    """Cluster embeddings by training heads on nearest-neighbour pairs.

    Inputs are L2-normalised before training, so cosine similarity decides
    the neighbours and the temperature acts the same on every backbone.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of clusters (head outputs).
    n_heads : int, default=8
        Heads trained at once from different random initialisations; the
        one with the lowest final loss is used.
    hidden_dim : int, default=0
        Width of a hidden layer; 0 makes each head linear.
    n_neighbors : int, default=20
        Nearest neighbours mined per embedding; each training pair is an
        embedding and one of them, drawn at random.
    loss : {"pmi", "scan"}, default="pmi"
        ``"pmi"``: the TEMI pointwise-mutual-information loss, which divides
        by the running cluster marginals so no cluster dominates.
        ``"scan"``: SCAN neighbour consistency plus an entropy term on the
        mean assignment, weighted by ``entropy_weight``.
    beta : float, default=0.6
        Exponent of the joint probability in the ``"pmi"`` loss.
    entropy_weight : float, default=5.0
        Weight of the balance term in the ``"scan"`` loss.
    epochs : int, default=100
        Passes over the embeddings.
    batch_size : int, default=1024
        Embeddings per optimisation step; inputs of fewer than
        ``8 * batch_size`` rows use ``n_samples // 8`` (at least 32).
    learning_rate : float, default=1e-3
        Adam learning rate.
    temperature : float, default=0.1
        Softmax temperature: head outputs are divided by it. Values below 1
        sharpen the assignments, which L2-normalised inputs need because
        their logits start small.
    self_label : bool, default=False
        After training, fine-tune the chosen head with cross-entropy on the
        embeddings it assigns with at least ``confidence`` probability.
    confidence : float, default=0.95
        Threshold for self-labelling.
    random_state : int, default=0
        Seed for initialisation and batch sampling.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each sample, by the chosen head (not renumbered).
    probabilities_ : ndarray of shape (n_samples, n_clusters)
        Cluster probabilities of the chosen head.
    head_losses_ : ndarray of shape (n_views, n_heads)
        Final training loss of every head.
    best_head_ : int
        Index of the chosen head.
    n_self_labelled_ : int
        Samples used for self-labelling (0 without it).
    """

    def __init__(
        self,
        n_clusters: int = 10,
        *,
        n_heads: int = 8,
        hidden_dim: int = 0,
        n_neighbors: int = 20,
        loss: str = "pmi",
        beta: float = 0.6,
        entropy_weight: float = 5.0,
        epochs: int = 100,
        batch_size: int = 1024,
        learning_rate: float = 1e-3,
        temperature: float = 0.1,
        self_label: bool = False,
        confidence: float = 0.95,
        random_state: int = 0,
    ):
        self.n_clusters = n_clusters
        self.n_heads = n_heads
        self.hidden_dim = hidden_dim
        self.n_neighbors = n_neighbors
        self.loss = loss
        self.beta = beta
        self.entropy_weight = entropy_weight
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.temperature = temperature
        self.self_label = self_label
        self.confidence = confidence
        self.random_state = random_state

    def fit(self, X, y=None):
        """Train the heads on ``X``: one array, or a list of arrays of the same images.

        A list gives several embedding spaces (one per backbone) of the same
        rows; each space gets its own heads, trained to agree.
        """
        views = _as_views(X)
        self._validate(len(views[0]))
        self.fit_views(views)
        return self

    def fit_predict(self, X, y=None):
        """Train the heads on ``X`` and return the cluster of each sample."""
        return self.fit(X).labels_

    def _validate(self, n_samples: int) -> None:
        for name in ("n_clusters", "n_heads", "n_neighbors", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.hidden_dim, Integral) or self.hidden_dim < 0:
            raise ValueError(f"hidden_dim must be 0 (linear head) or a positive integer, got {self.hidden_dim!r}")
        if self.loss not in HEAD_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(HEAD_LOSSES)}; got {self.loss!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be between 0 and 1, got {self.confidence!r}")
        if n_samples < 2:
            raise ValueError(f"a clustering head needs at least 2 samples, got {n_samples}")
        if self.n_clusters > n_samples:
            raise ValueError(f"n_clusters={self.n_clusters} is more than the {n_samples} samples")

    def fit_views(self, views: Sequence[np.ndarray]) -> "ClusteringHead":
        """Train on one or more embedding spaces of the same samples."""
        # The heads are small matrices, so thread start-up and synchronisation
        # cost more than they save: training runs on one PyTorch thread, and
        # the caller's thread count is restored afterwards.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._fit_views(views)
        finally:
            torch.set_num_threads(threads)

    def _fit_views(self, views: Sequence[np.ndarray]) -> "ClusteringHead":

        from .conditioning import l2_normalize

        # Heads see L2-normalised embeddings, so the softmax temperature has
        # the same effect whatever the scale of the backbone's features.
        views = [np.ascontiguousarray(l2_normalize(view), dtype=np.float32) for view in views]
        n = len(views[0])
        generator = torch.Generator().manual_seed(int(self.random_state))
        # Pairs come from the neighbours of all views concatenated, so the
        # heads of every view train on the same pairs.
        joint = np.concatenate(views, axis=1) if len(views) > 1 else views[0]
        neighbors = torch.from_numpy(mine_neighbors(joint, self.n_neighbors))
        inputs = [torch.from_numpy(view) for view in views]
        models = [self._build(view.shape[1], generator) for view in views]
        params = [p for model in models for p in model.parameters()]
        optimiser = torch.optim.Adam(params, lr=self.learning_rate)
        k, h = self.n_clusters, self.n_heads
        # Running cluster marginals of every head, for the PMI loss.
        marginals = [torch.full((h, k), 1.0 / k) for _ in views]
        # Small inputs get smaller batches, so every epoch has at least 8 steps.
        batch = min(self.batch_size, max(32, n // 8), n)
        steps_per_epoch = max(1, n // batch)
        losses = torch.zeros(len(views), h)
        for epoch in range(self.epochs):
            order = torch.randperm(n, generator=generator)
            epoch_losses = torch.zeros(len(views), h)
            for step in range(steps_per_epoch):
                anchors = order[step * batch : (step + 1) * batch]
                pick = torch.randint(neighbors.shape[1], (len(anchors),), generator=generator)
                partners = neighbors[anchors, pick] if neighbors.shape[1] else anchors
                per_head = self._step_loss(models, inputs, anchors, partners, marginals)
                optimiser.zero_grad()
                per_head.sum().backward()
                optimiser.step()
                epoch_losses += per_head.detach()
            losses = epoch_losses / steps_per_epoch
            if epoch == 0 or (epoch + 1) % 25 == 0:
                logger.debug("Head training epoch %d: best loss %.4f", epoch + 1, float(losses.min()))
        self.head_losses_ = losses.numpy()
        # Heads of all views are ranked together by their summed loss.
        self.best_head_ = int(losses.sum(dim=0).argmin())
        probabilities = self._predict_views(models, inputs)
        self.n_self_labelled_ = 0
        if self.self_label:
            probabilities = self._self_label(models, inputs, probabilities, generator)
        self.models_ = models
        self.probabilities_ = probabilities.numpy()
        self.labels_ = self.probabilities_.argmax(axis=1).astype(np.int64)
        logger.info(
            "Trained %d heads x %d spaces; chose head %d (loss %.4f), %d clusters in use",
            h,
            len(views),
            self.best_head_,
            float(losses.sum(dim=0)[self.best_head_]),
            np.unique(self.labels_).size,
        )
        return self

    def _build(self, dim: int, generator) -> "_Heads":
        return _Heads(dim, self.n_heads, self.hidden_dim, self.n_clusters, generator)

    def _logits(self, model, x):
        return model(x) / self.temperature

    def _step_loss(self, models, inputs, anchors, partners, marginals):

        total = []
        anchor_probs = []
        for view, (model, data) in enumerate(zip(models, inputs)):
            p_anchor = torch.softmax(self._logits(model, data[anchors]), dim=-1)
            p_partner = torch.softmax(self._logits(model, data[partners]), dim=-1)
            anchor_probs.append(p_anchor)
            if self.loss == "scan":
                joint = (p_anchor * p_partner).sum(dim=-1).clamp_min(1e-8)
                consistency = -joint.log().mean(dim=0)
                mean = p_anchor.mean(dim=0).clamp_min(1e-8)
                entropy = -(mean * mean.log()).sum(dim=-1)
                total.append(consistency - self.entropy_weight * entropy)
            else:
                with torch.no_grad():
                    batch_marginal = 0.5 * (p_anchor.mean(dim=0) + p_partner.mean(dim=0))
                    marginals[view].mul_(0.9).add_(0.1 * batch_marginal)
                # PMI loss: -log sum_k (p_a p_b)^beta / marginal_k.
                # NOTE: both sides of the pair get gradients; TEMI instead uses
                # an exponential-moving-average teacher for one side.
                joint = ((p_anchor * p_partner).clamp_min(1e-12) ** self.beta / marginals[view]).sum(dim=-1)
                total.append(-joint.clamp_min(1e-12).log().mean(dim=0))
        losses = torch.stack(total)
        if len(models) > 1:
            # Agreement between spaces: cross-entropy of each space's
            # assignment against the mean assignment of all spaces, per head.
            mean_all = torch.stack(anchor_probs).mean(dim=0).detach()
            agreement = torch.stack(
                [-(mean_all * p.clamp_min(1e-8).log()).sum(dim=-1).mean(dim=0) for p in anchor_probs]
            )
            losses = losses + agreement
        return losses

    def _predict_views(self, models, inputs):

        with torch.no_grad():
            probs = [torch.softmax(self._logits(m, x), dim=-1)[:, self.best_head_] for m, x in zip(models, inputs)]
        return torch.stack(probs).mean(dim=0)

    def _self_label(self, models, inputs, probabilities, generator):

        confident = probabilities.max(dim=1).values >= self.confidence
        targets = probabilities.argmax(dim=1)
        self.n_self_labelled_ = int(confident.sum())
        if self.n_self_labelled_ < self.n_clusters:
            logger.info("Skipping self-labelling: only %d confident samples", self.n_self_labelled_)
            return probabilities
        index = torch.nonzero(confident).flatten()
        counts = torch.bincount(targets[index], minlength=self.n_clusters).float()
        # Rare clusters weigh more, so self-labelling does not let large clusters grow.
        weights = counts.sum() / (self.n_clusters * counts.clamp_min(1.0))
        params = [p for model in models for p in model.parameters()]
        optimiser = torch.optim.Adam(params, lr=self.learning_rate)
        batch = min(self.batch_size, len(index))
        for _ in range(max(1, self.epochs // 4)):
            order = index[torch.randperm(len(index), generator=generator)]
            for start in range(0, len(order) - batch + 1, batch):
                rows = order[start : start + batch]
                loss = 0.0
                for model, data in zip(models, inputs):
                    logits = self._logits(model, data[rows])[:, self.best_head_]
                    loss = loss + torch.nn.functional.cross_entropy(logits, targets[rows], weight=weights)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        logger.info("Self-labelled on %d confident samples", self.n_self_labelled_)
        return self._predict_views(models, inputs)


class _Heads(nn.Module):
    """``n_heads`` independent linear or one-hidden-layer heads, evaluated together.

    The first layer of all heads is one matrix product; the output has shape
    (batch, n_heads, n_clusters).
    """

    def __init__(self, dim: int, n_heads: int, hidden_dim: int, n_clusters: int, generator):
        super().__init__()
        self.n_heads = n_heads
        first_width = hidden_dim or n_clusters
        self.first = nn.Parameter(_uniform((dim, n_heads * first_width), dim, generator))
        self.first_bias = nn.Parameter(torch.zeros(n_heads * first_width))
        self.second = None
        if hidden_dim:
            self.second = nn.Parameter(_uniform((n_heads, hidden_dim, n_clusters), hidden_dim, generator))
            self.second_bias = nn.Parameter(torch.zeros(n_heads, n_clusters))

    def forward(self, x):
        out = (x @ self.first + self.first_bias).view(len(x), self.n_heads, -1)
        if self.second is not None:
            out = torch.einsum("nhd,hdk->nhk", torch.relu(out), self.second) + self.second_bias
        return out


def _uniform(shape, fan_in: int, generator):
    # PyTorch's default nn.Linear range, drawn from the seeded generator.
    bound = 1.0 / np.sqrt(fan_in)
    return (torch.rand(*shape, generator=generator) * 2 - 1) * bound


def _as_views(X) -> list[np.ndarray]:
    views = list(X) if isinstance(X, (list, tuple)) else [X]
    arrays = [np.asarray(view, dtype=np.float32) for view in views]
    for array in arrays:
        if array.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (n_samples, n_features), got shape {array.shape}")
    if len({len(array) for array in arrays}) > 1:
        raise ValueError(f"all embedding spaces must have the same rows; got {[len(a) for a in arrays]}")
    return arrays
