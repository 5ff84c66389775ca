"""Class names for the benchmarks (imports nothing, so that bench_original.py can use it next to the original
code's own `clip` package)."""
import random

WORDS = ["red", "tabby", "cat", "golden", "retriever", "sports", "car", "maple", "leaf", "coffee", "mug", "snow",
         "leopard", "tree", "frog", "steam", "locomotive", "paper", "towel", "garden", "spider", "pool", "table"]


def classnames(n, seed=0):
    """n distinct names of 1 to 3 words (1, 2 or 2, 3 words drawn), numbered so that they are distinct."""
    rng = random.Random(seed)
    return ["_".join(rng.choice(WORDS) for _ in range(rng.choice((1, 2, 2, 3)))) + f"_{i}" for i in range(n)]
