"""Recipes of every method ``wavinv fit`` knows (installed as ``wavinv.baselines``).

Each module has ``build(**overrides)`` returning a configured wavinv estimator
with documented defaults, and ``TINY``, overrides for quick smoke tests;
``wavinv.methods`` maps method names to them. The classes themselves live in
``wavinv.models``, so saved models load anywhere.
"""
