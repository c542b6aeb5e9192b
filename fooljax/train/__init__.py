"""Classifier training and evaluation (optax, one jitted step, orbax checkpoints)."""

from fooljax.train.classifier import TrainConfig, train_classifier
from fooljax.train.evaluate import evaluate_classifier, predict_logits

__all__ = ["TrainConfig", "train_classifier", "evaluate_classifier", "predict_logits"]
