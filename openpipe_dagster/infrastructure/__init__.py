"""Infrastructure domain: shared resources and the Kafka topics asset."""

import dagster as dg

from openpipe.config import load_settings
from openpipe_dagster.infrastructure.assets import kafka_topics
from openpipe_dagster.infrastructure.resources import shared_resources

defs = dg.Definitions(assets=[kafka_topics], resources=shared_resources(load_settings()))
