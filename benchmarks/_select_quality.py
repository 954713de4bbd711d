"""Active-learning quality: learning curves of every strategy on scikit-learn's digits.

Data: ``sklearn.datasets.load_digits`` (1,797 8×8 digits, shipped with scikit-learn). Per
seed: a random third is the test set, the rest the pool. Features: the 64 pixels,
standardised; the unit-normalised version is the "embedding" the diversity parts, TypiClust
and the dedup check use. Classifier: curate's linear probe (``curate.select.probe``, the
same multinomial logistic regression ``curate select --probe`` trains).

Each run starts from the same ``--start`` random labels (``NAME@cold``: chosen by TypiClust,
a cold start with no model), then adds ``--step`` labels per round, chosen by the strategy from the probe's
predictions, up to ``--max-labels``. Reported per strategy (over ``--seeds``, mean ± sd):
accuracy at each label count; labels needed to reach random sampling's final mean
accuracy (on the mean curve; "-" when never); the area under the curve (mean accuracy over
the label counts). Writes ``results/select_quality.csv`` (long format: strategy, seed,
labels, accuracy) and prints a table. The hybrid's knobs can be varied with
``--hybrid-variants`` (``name:uncertainty:preselect:power:dup[:typical]``) for honest tuning on
separate seeds (``--seeds 100 101 102``).

    python benchmarks/_select_quality.py                 # 5 seeds, 7 strategies (~3 min on 2 cores)
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

DEFAULT_STRATEGIES = ("random", "entropy", "margin", "coreset", "badge", "typiclust", "typiclust@cold", "hybrid",
                      "hybrid@cold")


def add_quality_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--strategies", nargs="+", default=list(DEFAULT_STRATEGIES))
    p.add_argument("--start", type=int, default=10)
    p.add_argument("--step", type=int, default=10)
    p.add_argument("--max-labels", type=int, default=300)
    p.add_argument("--l2", type=float, default=1e-2, help="probe L2 strength")
    p.add_argument("--hybrid-variants", nargs="*", default=[],
                   help="extra hybrids NAME:UNCERTAINTY:PRESELECT:POWER:DUP[:TYPICAL_PER_CLASS] (DUP 'none': no "
                        "dedup check; TYPICAL_PER_CLASS 0: no TypiClust low-budget phase)")
    p.add_argument("--quality-csv", default=str(HERE / "results" / "select_quality.csv"))
    return p


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pool x, pool y, test x, test y): a seeded third of digits is the test set."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0).clip(1e-6)
    order = np.random.default_rng(seed).permutation(len(y))
    test, pool = order[: len(y) // 3], order[len(y) // 3:]
    return x[pool].astype(np.float32), y[pool], x[test].astype(np.float32), y[test]


def _strategy(name: str, variants: dict[str, tuple]):
    from curate.select import registry

    if name in variants:
        unc, pre, power, dup, typical = variants[name]
        return registry.STRATEGIES["hybrid"].fn, registry.Options(uncertainty=unc, preselect=pre, power=power,
                                                                  dup_threshold=dup, typical_per_class=typical,
                                                                  device="cpu")
    return registry.STRATEGIES[name].fn, registry.Options(device="cpu")


def learning_curve(name: str, seed: int, args, variants: dict[str, tuple]) -> list[tuple[int, float]]:
    """(labels, test accuracy) after each round for one strategy and seed."""
    from curate.select.probe import ProbeConfig, predict_proba, train_probe
    from curate.select.registry import STRATEGIES, Pool

    x, y, xt, yt = load_data(seed)
    emb = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    base, _, start = name.partition("@")
    fn, opt = _strategy(base, variants)
    rng = np.random.default_rng([seed, 7])
    labeled = np.zeros(len(y), dtype=bool)
    if start == "cold":  # no labels, no model: TypiClust picks the seed set
        picks, _ = STRATEGIES["typiclust"].fn(Pool(~labeled, labeled, emb), args.start, rng, opt)
    else:  # the same random seed set for every strategy (same rng state)
        picks = rng.choice(len(y), args.start, replace=False)
    labeled[picks] = True
    curve = []
    config = ProbeConfig(l2=args.l2, seed=seed, device="cpu")
    while True:
        probe = train_probe(x[labeled], y[labeled], 10, config, stats_from=x)
        acc = float((predict_proba(probe, xt, "cpu").argmax(1) == yt).mean())
        curve.append((int(labeled.sum()), acc))
        if labeled.sum() >= args.max_labels:
            return curve
        probs = predict_proba(probe, x, "cpu")
        picks, _ = fn(Pool(~labeled, labeled, emb, probs), args.step, rng, opt)
        if len(picks) == 0:
            return curve
        labeled[picks] = True


def summarise(rows: list[dict], baseline: str = "random") -> list[dict]:
    """Per strategy: final accuracy, labels to reach the baseline's final mean accuracy, AUC."""
    names = list(dict.fromkeys(r["strategy"] for r in rows))
    labels = sorted({r["labels"] for r in rows})
    curves = {}
    for s in names:
        acc = np.array([[r["accuracy"] for r in rows if r["strategy"] == s and r["labels"] == n] for n in labels])
        curves[s] = acc  # [labels, seeds]
    target = curves[baseline].mean(1)[-1] if baseline in curves else np.nan
    out = []
    for s in names:
        mean, sd = curves[s].mean(1), curves[s].std(1)
        hit = np.flatnonzero(mean >= target - 1e-12)
        per_seed = [next((labels[i] for i in range(len(labels)) if curves[s][i, k] >= target - 1e-12), None)
                    for k in range(curves[s].shape[1])]
        out.append({"strategy": s, "final": mean[-1], "final_sd": sd[-1], "auc": mean.mean(),
                    "auc_sd": curves[s].mean(0).std(),
                    "labels_to_target": labels[hit[0]] if len(hit) else None,
                    "saving": 1 - labels[hit[0]] / labels[-1] if len(hit) else None,
                    "per_seed_to_target": per_seed, "mean": mean, "sd": sd})
    return out


def gap_to_best(summary: list[dict], name: str = "hybrid") -> tuple[float, int]:
    """Largest shortfall (accuracy points) of ``name``'s mean curve below the best other strategy's."""
    by = {s["strategy"]: s["mean"] for s in summary}
    if name not in by or len(by) < 2:
        return float("nan"), -1
    others = np.max(np.stack([m for s, m in by.items() if s != name]), axis=0)
    gap = (others - by[name]) * 100
    return float(gap.max()), int(np.argmax(gap))


def run_quality(args) -> list[dict]:
    """Run every strategy × seed, write the CSV, print the table; returns the summary rows."""
    import torch

    torch.set_num_threads(1)  # tiny matrices: threads only add overhead (and the machine is shared)
    variants = {}
    for v in getattr(args, "hybrid_variants", []) or []:
        name, unc, pre, power, dup, *typical = v.split(":")
        variants[name] = (unc, float(pre), float(power), None if dup == "none" else float(dup),
                          float(typical[0]) if typical else 10.0)
    strategies = list(args.strategies) + [v for v in variants if v not in args.strategies]
    rows = []
    t0 = time.perf_counter()
    for name in strategies:
        t = time.perf_counter()
        for seed in args.seeds:
            for labels, acc in learning_curve(name, seed, args, variants):
                rows.append({"strategy": name, "seed": seed, "labels": labels, "accuracy": acc})
        print(f"  {name:<18} {time.perf_counter() - t:6.1f}s", flush=True)
    path = Path(args.quality_csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["benchmark", "dataset", "strategy", "seed", "labels", "accuracy",
                                           "host", "timestamp"])
        w.writeheader()
        for r in rows:
            w.writerow({"benchmark": "select_quality", "dataset": "sklearn-digits", **r,
                        "host": platform.node(), "timestamp": stamp})
    summary = summarise(rows)
    _print(summary, args, time.perf_counter() - t0, path)
    return summary


def _print(summary: list[dict], args, seconds: float, path: Path) -> None:
    base = next((s for s in summary if s["strategy"] == "random"), None)
    print(f"\nselect quality: sklearn digits, linear probe, {len(args.seeds)} seeds {args.seeds}, "
          f"{args.start} start + {args.step}/round up to {args.max_labels} ({seconds:.0f}s)")
    if base is not None:
        print(f"baseline (peer) random: final accuracy {base['final'] * 100:.2f} ± {base['final_sd'] * 100:.2f}")
    print(f"{'strategy':<18} {'final acc':>14} {'AUC':>14} {'labels to random final':>23} {'saving':>7}  per seed")
    for s in summary:
        hit = "-" if s["labels_to_target"] is None else str(s["labels_to_target"])
        save = "-" if s["saving"] is None else f"{s['saving'] * 100:.0f}%"
        per = ",".join("-" if v is None else str(v) for v in s["per_seed_to_target"])
        print(f"{s['strategy']:<18} {s['final'] * 100:7.2f} ± {s['final_sd'] * 100:4.2f} "
              f"{s['auc'] * 100:7.2f} ± {s['auc_sd'] * 100:4.2f} {hit:>23} {save:>7}  {per}")
    labels = list(range(args.start, args.max_labels + 1, args.step))
    marks = [i for i, n in enumerate(labels) if n in (10, 20, 30, 50, 100, 150, 200, 300)]
    print("mean accuracy (%) at labels: " + " ".join(f"{labels[i]:>6}" for i in marks))
    for s in summary:
        print(f"  {s['strategy']:<26}" + " ".join(f"{s['mean'][i] * 100:6.2f}" for i in marks if i < len(s["mean"])))
    singles = [s for s in summary if not s["strategy"].startswith("hybrid") and not s["strategy"].startswith("h-")]
    for entry in summary:
        name = entry["strategy"]
        if name in {s["strategy"] for s in singles}:
            continue
        cold = name.endswith("@cold")
        peers = [s for s in singles if cold or not s["strategy"].endswith("@cold")]
        gap, at = gap_to_best(peers + [entry], name)
        if at >= 0:
            best = "any start" if cold else "same random start"
            print(f"{name}: largest gap below the best single strategy ({best}) {gap:+.2f} points at "
                  f"{labels[at]} labels")
    print(f"csv: {path}")


if __name__ == "__main__":
    run_quality(add_quality_args(argparse.ArgumentParser(description=__doc__.split("\n")[0])).parse_args())
