"""Occupancy forecasts for car parks, from each site's own history.

Stdlib only. Pure: :mod:`series` holds a site's readings indexed by wall-clock time,
:mod:`model` predicts, :mod:`baselines` are the yardsticks it must beat, :mod:`backtest` replays
a history origin by origin. At the edges: :mod:`history_csv` reads the history files the CLI
(:mod:`cli`) takes, and :mod:`service` reads a site's stored observations for the API.
"""

from app.forecast.model import HORIZONS_MIN, Forecast, HorizonForecast, forecast_at
from app.forecast.series import SiteSeries

__all__ = ["HORIZONS_MIN", "Forecast", "HorizonForecast", "SiteSeries", "forecast_at"]
