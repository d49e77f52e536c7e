"""monthly-sunspots: Zurich monthly mean relative sunspot numbers 1749-1983 (Andrews & Herzberg 1985, via TSDL)."""

from lstmzoo.recipe import Anchor, DataFile
from lstmzoo.tasks import ForecastingRecipe, forecasting_hyperparameters


class MonthlySunspots(ForecastingRecipe):
    name = "monthly-sunspots"
    summary = "One-month-ahead forecasts of the Zurich monthly sunspot numbers 1749-1983 (2,820 values)"
    datasets = (DataFile(
        dataset="monthly-sunspots", filename="monthly-sunspots.csv",
        url="https://raw.githubusercontent.com/jbrownlee/Datasets/d20fcb6402ae34e653d4513b00f39257bb37ed7f/"
            "monthly-sunspots.csv",
        sha256="c4ec8cc57d9f6fb6ecdb3e1f37f25b6f4badd5124c55931052b0cd2fc3bc71f3"),)
    season = 132
    more_seasons = (12,)
    test_size = 0.33            # 931 months: 1906-06 ... 1983-12, the customary chronological 67/33 cut
    transform = "sqrt"          # steadies the noise, which grows with the count, and compresses the peaks
    lag = 1                     # the test part holds the highest cycle on record (1957): correct persistence
    target_ratio = 0.9
    preprocessing = ("the forecasting task's (lstmzoo info forecasting) with its choice for this series fixed: square "
                     "root of the counts; the model corrects the last month's value, scaled by the training part; "
                     "inputs are the previous `window` months, two channels each (the scaled root and its change "
                     "from the month before); test = the last 33 % (931 months, 1906-06 ... 1983-12), each forecast "
                     "from the true months before it, validation = the `val_size` months before; the seasonal naive "
                     "baseline uses the 11-year solar cycle (132 months: the cycle runs 9-14 years, so no lag fits "
                     "it well), and the 12-month lag is reported too (seasonal_naive_12_rmse); forecasts are squared "
                     "back with Duan's smearing over the training residuals (the mean, not the median, of the count)")
    # Chosen by the validation rmse averaged over seeds 0-2 (240 months before the test part): LSTM(32) 11.514; the
    # task's LSTM(64) 11.573, with dropout 0.4 11.550, LSTM(32) with dropout 0.4 11.564; with seed 0, windows of 24
    # or 48 months (11.68, 11.61), a horizon of 3 or 12, lr 0.003, a cosine schedule, and reading a year per LSTM
    # step as the recipe did before it ran on the task (11.89-11.96) scored worse.
    # Tried on validation in session 13 (val rmse median over seeds 0-5 or 0-11; defaults 11.58): early stopping
    # on val_rmse, a loss weighted by the level (the original scale's squared error), window 132, lr 0.0003,
    # 2 layers, 4,096 windows per epoch, LSTM(64) with dropout 0.2, ensembles of seeds or of windows, and the
    # mean with the linear autoregression: 11.54-11.71, none apart from the defaults by more than the seeds'
    # spread, so nothing changed; the test rmse sits on the target line whatever the setting.
    # Session 14, on a pseudo-test (the validation part's 240 months as test, the 240 before as validation; seeds
    # 0-11 or 0-5): refitting on training + validation for the best epoch count, 11.68 against 11.63 early stopped;
    # an autoregressive highway (LSTNet's linear term on the window's 36 scaled values, added to the head), 11.84
    # against 11.64. Neither kept. The test's per-level errors show where the target is lost: above a yearly mean
    # of 150 (53 months of the 1957 cycle, higher than any in training) seed 0 forecasts 15.2 low on average (AR 2.0).
    hyperparameters = forecasting_hyperparameters(
        window=36, hidden_size=32, dropout=0.1, epochs=100, lr=0.001, batch_size=64, val_size=240, patience=30)
    anchor = Anchor(metric="rmse", value=18.40,
                    source="the better naive forecast on the last 33 %: persistence (18.40; seasonal naive "
                           "36.52 at 12 months, 38.75 at 132); target: rmse <= 0.9 x that")
    measured = ("rmse 16.81 (0.914 x persistence 18.40; seasonal naive 38.75 at 132 months, 36.52 at 12), mae "
                "12.05 with seed 0; seeds 0-8: rmse 16.47-16.95, median 16.57 (the target line), met by seeds 1, 6 and "
                "7 (16.556, 16.468, 16.467), seeds 2 and 3 within 0.02 (before the recipe ran on the forecasting "
                "task: 16.35, 16.29-16.42, a setup chosen by the test rmse of 20 seeds); a linear autoregression on the same 36 months, "
                "fitted on the training part: 16.71; 52-66 s on 2 CPU cores shared with other work (load 6) "
                "(benchmarks/zoo.py, zoo/RESULTS.md)")
