"""Pages a researcher reads: a run's report.html and a study's, and the saved evaluation data
behind them (predictions.npz)."""
