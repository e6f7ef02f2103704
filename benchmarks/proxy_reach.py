"""How close the proxy's answers come in the proxy's own features, against the same sound's distance there.

    python benchmarks/proxy_reach.py --model MODEL --store STORE --results RESULTS [--targets lo:hi] [--generator SPEC]

``MODEL`` is a fitted ``proxy``; the targets are a published bench's (its
``target_ids``, from ``STORE``'s test split), inverted learnt alone as the bench
does (K=16 of 256 draws, the bench's seed per target). For each target it
measures, in the proxy's coordinates (PCA features of the pooled picture over
their scale, ``ProxySearch.picture_features``): how far the best candidate's real
picture is from the target, how far the proxy predicts it is, and how far the
same sound is (the true parameters rendered as the bench's floor renders them:
another seed, or their own render). It prints the means over the targets beside
best-of-16 lsd_db and the proxy's held-out error. The proxy leads a search to the
same sound only where its error is small against the same sound's distance.
"""

from __future__ import annotations

import argparse

import numpy as np

from wavinv import load, open_store
from wavinv.bench import published_targets, target_seeds
from wavinv.errors import InputError, WavinvError
from wavinv.floor import floor_waves, probe_floor
from wavinv.metrics import lsd_db
from wavinv.models.proxy import ProxySearch
from wavinv.targets import Target

from refusal import refuse


def reach(inv, store, gen, row: int, position: dict[int, int]) -> tuple[float, ...]:
    """``(best lsd_db, the best's real and predicted feature distance, the same sound's lsd_db and feature distance)``."""
    est = inv.estimator
    at = position[row]
    res = inv.invert(Target("waveform", store.waveforms("test")[at], str(row)), n=16, draws=256, generator=gen,
                     random_state=target_seeds(0, row)[0])
    target = est.picture_features(res.target_spectrogram[None])[0]
    distance = lambda z: float(np.sqrt(((z - target) ** 2).sum()))  # noqa: E731
    truth = store.params("test")[at][None]
    floor = probe_floor(gen, truth, lambda w: lsd_db(res.target_spectrogram, inv.spectrograms(w)))
    same = inv.spectrograms(floor_waves(gen, truth, floor))
    return (float(res.distances["lsd_db"][0]), distance(est.picture_features(res.spectrograms[:1])[0]),
            distance(est.forward(res.params_unit[:1])[0]), float(lsd_db(res.target_spectrogram, same)[0]),
            distance(est.picture_features(same)[0]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a fitted proxy (wavinv fit --method proxy)")
    p.add_argument("--store", required=True, help="the store whose test split holds the targets")
    p.add_argument("--results", required=True, help="a bench's results.json (its target_ids)")
    p.add_argument("--targets", default="0:30", help="slice of the bench's targets, lo:hi")
    p.add_argument("--generator", default=None, help="the model's generator spec when it is not built in (a file or module you name)")
    args = p.parse_args()
    try:
        ids = published_targets(args.results, args.targets)
    except InputError as e:
        refuse(str(e))
    try:
        inv = load(args.model)
        if not isinstance(inv.estimator, ProxySearch):
            refuse(f"{args.model} holds a {inv.method} model, not a proxy")
        store = open_store(args.store)
        gen = inv.attach(args.generator)
        if not store.keeps_waveforms:
            store.attach(gen)  # its targets are re-rendered from their parameters
        position = {int(i): k for k, i in enumerate(store.ids("test"))}
        missing = [i for i in ids if int(i) not in position]
        if missing:
            refuse(f"{len(missing)} of the targets (first id {missing[0]}) are not in {args.store}'s test split")
        rows = np.array([reach(inv, store, gen, int(i), position) for i in ids])
    except WavinvError as e:
        refuse(str(e))
    best, real, predicted, same_lsd, same = rows.mean(axis=0)
    print(f"{len(ids)} targets, learnt alone (K=16 of 256 draws); distances in the proxy's features (unit std)")
    print(f"proxy held-out error            {inv.estimator.proxy_error_:.2f}")
    print(f"best candidate, its render      {real:.2f}   (lsd_db {best:.2f})")
    print(f"best candidate, as predicted    {predicted:.2f}")
    print(f"the same sound                  {same:.2f}   (lsd_db {same_lsd:.2f})")


if __name__ == "__main__":
    main()
