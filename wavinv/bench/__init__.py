"""The benchmark harness: which input and which method invert the generator best, at what cost.

``bench`` fits every (method, input) pair on a store's train split, inverts
held-out targets (its test split, never seen in fitting, or patches drawn from
the prior outside the store), re-renders every candidate with the generator,
scores the same-sound floor (``wavinv.floor``'s rule) and writes, into ``out``:

- ``results.md``, ``results.csv``, ``results.json``: one row per (method, input),
  each metric the mean over targets with a 95% bootstrap interval; the prior row
  (random parameters) is the chance level and is always there;
- ``lsd_db.png`` (bars), ``quality_vs_cost.png`` (scatter), ``gallery-N.png``
  (a target beside every method's best candidate);
- with a search (``refine``), the anytime table: each search row's gap closed
  after each budget of renders per target (``results.md``, ``anytime.csv``,
  ``anytime.png``), from the best lsd_db each inversion recorded on the way;
- where the fits measured it, which parameters are learnt: each method's error per
  parameter beside the sound's sensitivity to it (``results.md``, ``learnt.csv``);
- ``models/{method}-{input}.joblib`` + ``.json`` and ``evals/{method}-{input}.json``:
  fitted models and per-target results, reused when the store and settings
  match, so an interrupted bench resumes where it stopped; ``evals/floor.json``:
  the floor's probe, decision and per-target records.

Bootstrap resamples are drawn once and shared by every row (the targets are the
same for every row), so the interval of a difference between two rows is a
paired one: ``results`` reports each row's lsd_db best-of-K minus the best row's.

Modules, lowest first (a module imports only those above it): ``stats``
(bootstrap), ``targets`` (the sounds inverted), ``settings`` (profile, settings,
rows), ``table`` (metrics and the rows' numbers), ``anytime`` (the search rows'
gap closed per budget), ``learnt`` (per parameter, error
beside sensitivity), ``cache`` (files kept between runs, fitted models),
``evaluate`` (per-target scores), ``floor`` (the floor row), ``report`` (tables and figures),
``provenance`` (machine, version, command), ``run`` (the ``bench`` driver).
"""

from __future__ import annotations

from ..profiles import PROFILES
from .evaluate import target_seeds
from .provenance import machine_info
from .run import BenchResult, bench
from .settings import get_profile, parse_list, published_targets
from .stats import LEVEL, N_BOOT, boot_indices, bootstrap_ci
from .table import CSV_COLUMNS, METRICS

# the public API; the other names above are imported by the benchmarks/ scripts and the tests
__all__ = ["BenchResult", "bench", "bootstrap_ci"]
