"""Sensors, one module per domain with the same names as openpipe_dagster/assets/."""
