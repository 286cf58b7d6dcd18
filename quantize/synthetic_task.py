"""A learnable text-classification task the project generates, so int8 accuracy can be
measured without downloads: with random weights logits are flat and top-1 agreement says
little; after a few seconds of fine-tuning a tiny model is >= 95% right, and what int8
costs shows as accuracy points.

Sentences describe something with two adjectives from one of two disjoint groups
(pleasant / unpleasant); the label is the group. Nouns, templates and filler vary.
"""

from __future__ import annotations

import random

import numpy as np
import torch

POSITIVE = ["good", "great", "happy", "bright", "warm", "kind", "calm", "fresh", "lovely", "quiet", "clean", "sweet"]
NEGATIVE = ["bad", "sad", "dark", "cold", "cruel", "angry", "stale", "weak", "awful", "noisy", "dirty", "bitter"]
NOUNS = ["house", "city", "river", "film", "meal", "garden", "train", "school", "market", "song", "room", "village"]
TEMPLATES = [
    "the {noun} was {a} and {b}.",
    "everyone said the {noun} felt {a}, even {b}.",
    "in the morning the {noun} seemed {a} but also {b}.",
    "my friend thinks this {noun} is {a} and rather {b}.",
    "what a {a} {noun}, so {b}!",
]
LABELS = {0: "unpleasant", 1: "pleasant"}


def make_examples(count: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        label = rng.randint(0, 1)
        words = POSITIVE if label else NEGATIVE
        a, b = rng.sample(words, 2)
        out.append((rng.choice(TEMPLATES).format(noun=rng.choice(NOUNS), a=a, b=b), label))
    return out


def fine_tune(model, tokenizer, examples, steps: int = 300, batch: int = 32, lr: float = 5e-4, seq_len: int = 32, seed: int = 0):
    """A few hundred Adam steps on ``examples`` (text, label); returns the model in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        chosen = rng.choice(len(examples), size=batch)
        texts = [examples[i][0] for i in chosen]
        labels = torch.tensor([examples[i][1] for i in chosen])
        encoded = tokenizer(texts, truncation=True, max_length=seq_len, padding=True, return_tensors="pt")
        inputs = {k: v for k, v in encoded.items() if k in model.input_names}
        loss = torch.nn.functional.cross_entropy(model(**inputs).logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def accuracy(classify, examples) -> float:
    """Share of ``examples`` whose best label (from a text-classification pipeline) is right."""
    predictions = classify([text for text, _ in examples])
    return float(np.mean([p[0]["label"] == LABELS[label] for p, (_, label) in zip(predictions, examples)]))
