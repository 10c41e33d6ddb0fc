"""Topics domain: Kafka topics as external assets, observed by the topic_observations sensor."""

import dagster as dg

from openpipe.config import load_settings
from openpipe_dagster.topics.assets import topic_asset_key, topic_specs
from openpipe_dagster.topics.sensors import build_topic_observations_sensor

_settings = load_settings()

defs = dg.Definitions(
    assets=topic_specs(_settings), sensors=[build_topic_observations_sensor(_settings)]
)

__all__ = ["defs", "topic_asset_key"]
