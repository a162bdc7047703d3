"""Time mean attention distance: the keras.io example's double Python loop vs `vit_tf.analysis` vs a forward pass.

    PYTHONPATH=. python benchmarks/bench_mean_distance.py [--model vit_base_patch16_224] [--batch 1]

Random weights (timing does not depend on them). Prints seconds per image batch for all blocks and the ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def example_distance_matrix(patch_size, num_patches, length):
    # The keras.io example's construction: a Python double loop with one np.linalg.norm per pair, on every call.
    matrix = np.zeros((num_patches, num_patches))
    for i in range(num_patches):
        for j in range(num_patches):
            if i == j:
                continue
            xi, yi = i // length, i % length
            xj, yj = j // length, j % length
            matrix[i, j] = patch_size * np.linalg.norm([xi - xj, yi - yj])
    return matrix


def example_mean_distance(patch_size, attention, num_prefix):
    attention = attention[..., num_prefix:, num_prefix:]
    n = attention.shape[-1]
    length = int(np.sqrt(n))
    d = example_distance_matrix(patch_size, n, length).reshape(1, 1, n, n)
    return np.mean(np.sum(attention * d, axis=-1), axis=-1)


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_base_patch16_224")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import vit_tf
    from vit_tf.analysis import mean_attention_distance

    model = vit_tf.create_model(args.model)
    c = model.config
    x = np.random.RandomState(0).randn(args.batch, *c.img_size, 3).astype(np.float32)
    _, attention = model(x)  # warm-up
    attention = {k: v.numpy() for k, v in attention.items()}
    p, prefix = c.patch_size, c.num_prefix_tokens

    ours = mean_attention_distance(attention, patch_size=p, num_prefix_tokens=prefix)
    theirs = np.stack([example_mean_distance(p, a, prefix) for a in attention.values()], axis=1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)

    t_forward = best_of(lambda: model(x), args.repeats)
    t_example = best_of(lambda: [example_mean_distance(p, a, prefix) for a in attention.values()], args.repeats)
    t_ours = best_of(lambda: mean_attention_distance(attention, patch_size=p, num_prefix_tokens=prefix),
                     args.repeats)
    print(f"{args.model}, batch {args.batch}, {c.depth} blocks, {c.grid_size[0]}x{c.grid_size[1]} grid "
          f"(best of {args.repeats})")
    print(f"  forward pass            {t_forward * 1e3:9.2f} ms")
    print(f"  keras.io double loop    {t_example * 1e3:9.2f} ms   ({t_example / t_forward:.2f}x the forward pass)")
    print(f"  vit_tf.analysis         {t_ours * 1e3:9.2f} ms   ({t_ours / t_forward:.3f}x the forward pass)")
    print(f"  speed-up over the loop  {t_example / t_ours:9.1f}x")


if __name__ == "__main__":
    main()
