#!/usr/bin/env python3
"""Evaluates a cohort checkpoint in Python, independently of the C++ code.

    evaluate_checkpoint.py CHECKPOINT TEST.csv LABEL_COLUMN [TORCHSCRIPT_MODULE]

Loads the checkpoint with torch.load (a {name: float32 tensor} state dict: fc0.weight,
fc0.bias, fc1.weight, ... of a logreg or mlp; or, with TORCHSCRIPT_MODULE, the state dict of
that module, loaded into it with load_state_dict), reads the CSV with the csv module, standardizes
the features as cohort documents it (docs/configuration.md: the class-balanced centre, the
mean of the per-class means, and scale, the square root of the within-class variance averaged
over classes; constant features scale 1), runs the Linear/ReLU stack (or the module) and
prints one JSON object: examples, correct, accuracy, loss (mean cross-entropy) and, for two
classes, auc.
"""
import csv
import json
import sys

import torch


def standardize(x, y):
    # Statistics in float64 from the float32 values, as the C++ Standardizer computes them.
    x64 = x.to(torch.float64)
    classes = sorted(set(y.tolist()))
    means = {c: x64[y == c].mean(0) for c in classes}
    centre = sum(means.values()) / len(classes)
    var = sum(((x64[y == c] - means[c]) ** 2).mean(0) for c in classes) / len(classes)
    sd = var.sqrt()
    sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
    return ((x64 - centre) / sd).to(torch.float32)


def auc(scores, labels):
    # Probability that a positive outscores a negative, ties counting one half.
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum().item()
    ties = (pos[:, None] == neg[None, :]).sum().item()
    return (greater + 0.5 * ties) / (len(pos) * len(neg))


def main():
    checkpoint, table, label = sys.argv[1:4]
    module = torch.jit.load(sys.argv[4]) if len(sys.argv) > 4 else None
    state = torch.load(checkpoint)
    with open(table, newline="") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    index = header.index(label)
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    y = torch.tensor([int(float(r[index])) for r in body], dtype=torch.int64)
    x = torch.tensor([[float(v) for i, v in enumerate(r) if i != index] for r in body],
                     dtype=torch.float32)
    h = standardize(x, y)
    with torch.no_grad():
        if module is not None:
            module.load_state_dict(state)
            module.eval()
            h = module(h)
        layers = [] if module is not None else sorted(
            {k.split(".")[0] for k in state}, key=lambda name: int(name[2:]))
        for i, name in enumerate(layers):
            h = torch.nn.functional.linear(h, state[name + ".weight"], state[name + ".bias"])
            if i + 1 < len(layers):
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, y, reduction="sum").item() / len(y)
        predicted = h.argmax(1)
        correct = int((predicted == y).sum().item())
        out = {"examples": len(y), "correct": correct, "accuracy": correct / len(y), "loss": loss}
        if h.shape[1] == 2:
            out["auc"] = auc(torch.softmax(h, 1)[:, 1], y)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
