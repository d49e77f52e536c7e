"""An example lstmzoo plugin: forecasting a noisy sine wave generated on the fly.

Only metadata is defined at import (``lstmzoo list`` imports this module); NumPy work happens in methods.
"""

import numpy as np
from lstmzoo.recipe import Anchor
from lstmzoo.tasks import ForecastingRecipe, forecasting_hyperparameters

PERIOD = 20
LENGTH = 500
NOISE = 0.1


class SineWave(ForecastingRecipe):
    name = "sine-wave"
    summary = f"One-step-ahead forecasts of a noisy sine wave (period {PERIOD}, generated; an example plugin)"
    datasets = ()                   # generated: nothing to download
    season = PERIOD
    test_size = 100
    preprocessing = (f"{LENGTH} values of sin(2 pi t / {PERIOD}) plus Gaussian noise (sd {NOISE}, fixed seed), "
                     "standardised; test = the last 100 values, validation = the 40 before")
    hyperparameters = forecasting_hyperparameters(
        window=PERIOD, hidden_size=16, epochs=30, lr=0.01, batch_size=32, val_size=40, patience=10)
    anchor = Anchor(metric="rmse", value=round(NOISE * 2 ** 0.5, 3),
                    source="seasonal naive forecast (the value one period earlier) on noise of sd 0.1")

    def load_series(self, hp):
        # A fixed generator, not hp["seed"]: the data stay the same whatever seed trains the model.
        t = np.arange(LENGTH)
        values = np.sin(2 * np.pi * t / PERIOD) + np.random.default_rng(2024).normal(0, NOISE, LENGTH)
        return [str(i) for i in t], values
