"""COCO bbox evaluation cost at SARDet-100K validation size: pycocotools vs faster_coco_eval, in one process.

A synthetic set shaped like SARDet-100K val (default 10,000 images, ~2.3 GT per image over 6 classes with
shuffled category ids, every COCO size bucket, a few crowd regions) and 100 detections per image (the
``score_thr=0.0`` final-evaluation load: jittered copies of the GT, some with the wrong class, plus
background false positives) is written to a temp dir. For each backend it times

* zoolab: ``zoolab.metrics.coco.coco_stats`` — the code path of ``evaluate_coco`` (convert to COCO
  result dicts with the 100-per-image cap, load GT + results, evaluate, accumulate, summarise);
* raw: the library alone on the same result dicts: ``COCO(gt)`` + ``loadRes`` ("load"), then
  ``evaluate/accumulate/summarize`` ("eval").

It checks that all runs give the same 12 stats (the two backends differ at most by float noise, ~1e-16:
pycocotools' precision carries an ``np.spacing(1)`` in its denominator) and that ``evaluate_coco``'s
rounded metrics are identical, then prints a table (the fastest of ``--repeats`` runs per side, the sides
alternating which goes first), the pycocotools / faster_coco_eval time ratio and, per backend, the ratio
of zoolab's path to the raw library.

    python benchmarks/coco_eval.py                 # ~5 min on 2 cores
    python benchmarks/coco_eval.py --images 500    # quick check
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from zoolab.metrics.coco import BACKENDS, STAT_NAMES, coco_stats, detections_to_coco_results, evaluate_coco

CLASSES = ["ship", "aircraft", "car", "tank", "bridge", "harbor"]
CATEGORY_IDS = [4, 2, 6, 1, 5, 3]  # label index -> JSON id, deliberately not the class order


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="number of images (SARDet val: 10,492)")
    parser.add_argument("--gt-per-image", type=float, default=2.3, help="mean GT boxes per image (Poisson)")
    parser.add_argument("--dets-per-image", type=int, default=100, help="detections per image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="runs per side; the fastest of each is shown")
    return parser


def make_dataset(args, folder: Path) -> tuple[Path, list[dict]]:
    """Write the GT JSON; return it and the per-image detections in evaluate_coco's input format."""
    rng = np.random.default_rng(args.seed)
    images, annotations, detections = [], [], []
    for image_id in range(1, args.images + 1):
        width, height = (int(v) for v in rng.choice([512, 640, 800, 1024], size=2))
        images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg", "width": width, "height": height})
        n_gt = rng.poisson(args.gt_per_image)
        side = np.exp(rng.uniform(np.log(8), np.log(300), size=(n_gt, 2)))  # small, medium and large
        xy = rng.uniform(0, 1, size=(n_gt, 2)) * np.maximum([width, height] - side, 1)
        labels = rng.integers(0, len(CLASSES), size=n_gt)
        for (x, y), (w, h), label in zip(xy, side, labels):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": CATEGORY_IDS[label], "bbox": [x, y, w, h], "area": w * h,
                                "iscrowd": int(rng.random() < 0.01)})
        n_tp = min(n_gt * 3, args.dets_per_image)  # a few jittered copies of each GT box
        src = rng.integers(0, max(n_gt, 1), size=n_tp) if n_gt else np.zeros(0, dtype=int)
        tp_xy = xy[src] + rng.normal(0, 0.1, size=(n_tp, 2)) * side[src]
        tp_wh = side[src] * np.exp(rng.normal(0, 0.1, size=(n_tp, 2)))
        tp_labels = np.where(rng.random(n_tp) < 0.85, labels[src], rng.integers(0, len(CLASSES), size=n_tp))
        n_fp = args.dets_per_image - n_tp
        fp_wh = np.exp(rng.uniform(np.log(8), np.log(300), size=(n_fp, 2)))
        fp_xy = rng.uniform(0, 1, size=(n_fp, 2)) * np.maximum([width, height] - fp_wh, 1)
        boxes_xywh = np.concatenate([np.concatenate([tp_xy, tp_wh], 1), np.concatenate([fp_xy, fp_wh], 1)])
        xyxy = np.concatenate([boxes_xywh[:, :2], boxes_xywh[:, :2] + boxes_xywh[:, 2:]], 1)
        scores = np.concatenate([rng.uniform(0.3, 1.0, n_tp), rng.uniform(0.0, 0.6, n_fp)])
        detections.append({
            "image_id": image_id,
            "boxes": xyxy.astype(np.float32),
            "scores": scores.astype(np.float32),
            "labels": np.concatenate([tp_labels, rng.integers(0, len(CLASSES), size=n_fp)]).astype(np.int64),
        })
    categories = [{"id": cid, "name": name} for cid, name in sorted(zip(CATEGORY_IDS, CLASSES))]
    gt_file = folder / "val.json"
    gt_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return gt_file, detections


def raw_library(backend: str, gt_file: Path, results: list[dict]) -> tuple[np.ndarray, float, float]:
    """The library alone (default params: all images and categories); returns stats, load s, eval s."""
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCO, COCOeval_faster as Eval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval as Eval
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        gt = COCO(str(gt_file))
        dt = gt.loadRes(results)
        loaded = time.perf_counter()
        evaluator = Eval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        done = time.perf_counter()
    return np.asarray(evaluator.stats[:12], dtype=np.float64), loaded - start, done - loaded


def main(args) -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        gt_file, detections = make_dataset(args, Path(tmp))
        n_gt = len(json.loads(gt_file.read_text())["annotations"])
        print(f"synthetic set: {args.images:,} images, {n_gt:,} GT boxes, {len(CLASSES)} classes, "
              f"{sum(len(d['scores']) for d in detections):,} detections "
              f"(built in {time.perf_counter() - start:.1f} s)")

        start = time.perf_counter()
        n_results = len(detections_to_coco_results(detections, CATEGORY_IDS))
        convert_s = time.perf_counter() - start
        gc.collect()

        rows, stats = [], {}
        for backend in BACKENDS:
            best_zoolab, best_raw = float("inf"), (float("inf"), 0.0, 0.0)
            for repeat in range(args.repeats):  # alternate which side goes first: drift hits both alike
                for side in (("zoolab", "raw") if repeat % 2 == 0 else ("raw", "zoolab")):
                    gc.collect()
                    if side == "zoolab":
                        start = time.perf_counter()
                        stats[("zoolab", backend)] = coco_stats(gt_file, detections, CATEGORY_IDS, backend)
                        best_zoolab = min(best_zoolab, time.perf_counter() - start)
                    else:
                        results = detections_to_coco_results(detections, CATEGORY_IDS)  # loadRes edits them
                        stats[("raw", backend)], load_s, eval_s = raw_library(backend, gt_file, results)
                        best_raw = min(best_raw, (load_s + eval_s, load_s, eval_s))
                        del results
            rows.append((f"zoolab coco_stats / evaluate_coco path, {backend}", None, None, best_zoolab))
            rows.append((f"raw {backend} (COCO + loadRes | eval+acc+summ)", best_raw[1], best_raw[2], best_raw[0]))
            gc.collect()
        metrics = {b: evaluate_coco(gt_file, detections, CATEGORY_IDS, CLASSES, backend=b) for b in BACKENDS}

    print(f"detections -> {n_results:,} COCO result dicts: {convert_s:.1f} s (inside the zoolab rows)")
    print(f"\n| {'run':<58} | {'load s':>7} | {'eval s':>7} | {'total s':>7} |")
    print(f"|{'-' * 60}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for name, load_s, eval_s, total_s in rows:
        cells = [f"{v:7.1f}" if v is not None else f"{'':7}" for v in (load_s, eval_s, total_s)]
        print(f"| {name:<58} | {' | '.join(cells)} |")

    reference = stats[("raw", "pycocotools")]
    worst = max(float(np.abs(v - reference).max()) for v in stats.values())
    print("\n12 stats (raw pycocotools): " + ", ".join(f"{n} {v:.4f}" for n, v in zip(STAT_NAMES, reference)))
    for key, value in stats.items():
        same_backend_raw = stats[("raw", key[1])]
        assert np.array_equal(value, same_backend_raw), f"{key} differs from the raw library: {value}"
    assert worst <= 1e-12, f"backends disagree by {worst}"
    assert metrics["faster_coco_eval"] == metrics["pycocotools"], metrics
    print(f"equality: zoolab == raw library per backend (bit-exact); faster_coco_eval vs pycocotools max "
          f"|diff| over the 12 stats = {worst:.1e}; evaluate_coco results identical: True")
    zoolab = {backend: total for (name, _, _, total), backend in zip(rows[::2], BACKENDS)}
    raw = {backend: total for (name, _, _, total), backend in zip(rows[1::2], BACKENDS)}
    ratio_zoolab = zoolab["pycocotools"] / zoolab["faster_coco_eval"]
    ratio_raw = raw["pycocotools"] / raw["faster_coco_eval"]
    print(f"speed ratio pycocotools / faster_coco_eval: zoolab path {ratio_zoolab:.2f}x, "
          f"raw libraries {ratio_raw:.2f}x")
    for backend in BACKENDS:
        print(f"zoolab path / raw library ({backend}): {zoolab[backend] / raw[backend]:.2f}x "
              "(the zoolab path includes building the result dicts; the raw side gets them ready-made)")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
