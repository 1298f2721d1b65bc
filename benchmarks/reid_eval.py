"""Market-1501-sized re-ID evaluation: vectorised ``rank_metrics`` vs the per-query loop, in one process.

Builds a synthetic problem of Market's test size (3,368 queries x 15,913 gallery, 751 identities,
6 cameras, 512-d random L2-normalised features, seeded), computes distance = 1 - cosine with one
matrix product (timed separately), then times both evaluators on the same distance matrix, checks
that their results are identical and prints the time ratio and the metrics. With ``--loop-queries N``
the loop runs on a random subset of N queries only and its full time is extrapolated (printed as
such); equality is then checked on that subset.

    python benchmarks/reid_eval.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from zoolab.metrics.reid import rank_metrics, rank_metrics_loop


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the distance matmul")
    parser.add_argument("--num-query", type=int, default=3368)
    parser.add_argument("--num-gallery", type=int, default=15913)
    parser.add_argument("--num-ids", type=int, default=751)
    parser.add_argument("--num-cams", type=int, default=6)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--loop-queries", type=int, default=0,
                        help="run the loop on this many random queries and extrapolate (0 = all)")
    parser.add_argument("--noise", type=float, default=3.0, help="feature noise std (identity centres have std 1)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def make_problem(args: argparse.Namespace) -> tuple[np.ndarray, ...]:
    """Seeded pids / camids (every id in the gallery, some gallery junk -1 and background 0) and features."""
    rng = np.random.default_rng(args.seed)
    ids = np.arange(1, args.num_ids + 1)
    g_pids = np.concatenate([ids, rng.choice(ids, args.num_gallery - ids.size)])
    g_pids[rng.random(g_pids.size) < 0.02] = -1
    g_pids[rng.random(g_pids.size) < 0.10] = 0
    q_pids = rng.choice(ids, args.num_query)
    q_cams = rng.integers(0, args.num_cams, args.num_query)
    g_cams = rng.integers(0, args.num_cams, args.num_gallery)
    # Identity centres plus noise so the metrics are neither 0 nor 1.
    centres = rng.standard_normal((args.num_ids + 1, args.dim), dtype=np.float32)
    q_feat = centres[q_pids] + args.noise * rng.standard_normal((args.num_query, args.dim), dtype=np.float32)
    g_feat = centres[np.maximum(g_pids, 0)] + args.noise * rng.standard_normal((args.num_gallery, args.dim),
                                                                         dtype=np.float32)
    return q_feat, g_feat, q_pids, g_pids, q_cams, g_cams


def cosine_distance(q_feat: np.ndarray, g_feat: np.ndarray) -> np.ndarray:
    q = torch.nn.functional.normalize(torch.from_numpy(q_feat), dim=1)
    g = torch.nn.functional.normalize(torch.from_numpy(g_feat), dim=1)
    return (1.0 - q @ g.T).numpy()


def _timed(fn, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    q_feat, g_feat, q_pids, g_pids, q_cams, g_cams = make_problem(args)
    print(f"problem: {args.num_query} queries x {args.num_gallery} gallery, {args.dim}-d, {args.num_ids} ids, "
          f"{args.num_cams} cams, junk(-1) {int((g_pids == -1).sum())}, background(0) {int((g_pids == 0).sum())} "
          f"| threads {args.threads}")

    dist, t_dist = _timed(cosine_distance, q_feat, g_feat)
    print(f"distance (1 - cosine, one matmul, float32): {t_dist:.2f} s")

    fast, t_fast = _timed(rank_metrics, dist, q_pids, g_pids, q_cams, g_cams)
    print(f"rank_metrics (vectorised):   {t_fast:.2f} s")

    if 0 < args.loop_queries < args.num_query:
        subset = np.sort(np.random.default_rng(args.seed + 1).choice(args.num_query, args.loop_queries,
                                                                     replace=False))
        slow, t_slow = _timed(rank_metrics_loop, dist[subset], q_pids[subset], g_pids, q_cams[subset], g_cams)
        t_loop = t_slow * args.num_query / subset.size
        print(f"rank_metrics_loop (reference): {t_slow:.2f} s on {subset.size} queries -> "
              f"EXTRAPOLATED {t_loop:.2f} s for {args.num_query}")
        reference, _ = _timed(rank_metrics, dist[subset], q_pids[subset], g_pids, q_cams[subset], g_cams)
        scope = f"on the {subset.size}-query subset"
    else:
        slow, t_loop = _timed(rank_metrics_loop, dist, q_pids, g_pids, q_cams, g_cams)
        print(f"rank_metrics_loop (reference): {t_loop:.2f} s")
        reference, scope = fast, "on all queries"

    identical = reference == slow
    print(f"ratio loop / vectorised: {t_loop / t_fast:.2f}x (> 1 means vectorised is faster)")
    print(f"identical results {scope}: {identical}")
    if not identical:
        print(f"  vectorised: {reference}\n  loop:       {slow}")
    print("metrics: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in fast.items()))


if __name__ == "__main__":
    main()
