"""The chance level: parameters drawn from the prior, whatever the input."""

from __future__ import annotations

import numpy as np

from .base import WavinvEstimator, as_generator, check_n_samples

__all__ = ["PriorSampler"]


class PriorSampler(WavinvEstimator):
    """Ignores ``X``: samples are uniform in unit scale, the prediction is 0.5.

    Stores draw parameters uniformly in unit scale, so this is the prior every
    other method must beat; 0.5 is its median, the constant that minimises the
    expected absolute error under it. ``fit`` only records the shapes (and, for
    targets that are not unit-scaled, the interval each is drawn from).
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True  # the chance level: it ignores X
        return tags

    def fit(self, X, y) -> "PriorSampler":
        self._check_fit_inputs(X, y)
        return self

    def predict(self, X) -> np.ndarray:
        X = self._check_X(X)
        return self._predictions(np.full((len(X), self.n_params_), 0.5))

    def sample(self, X, n_samples: int, random_state=None) -> np.ndarray:
        X = self._check_X(X)
        n_samples = check_n_samples(n_samples)
        return self._from_unit(as_generator(random_state).random((len(X), n_samples, self.n_params_)))
