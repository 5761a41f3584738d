"""Evaluation tools, above the facade: each takes an ``Asif`` (or its stores) as an argument, and nothing in the
runtime core imports them. evaluate (accuracy on a labelled folder or file), sweeps (k/p/template grids, anchor
curves), tune (choose k and p), calibrate (abstention threshold), retrieval (text->image recall), prune (smaller
anchor sets), report (HTML explanations) and demo (the Flickr8k/CIFAR-10 demo and its class list)."""
