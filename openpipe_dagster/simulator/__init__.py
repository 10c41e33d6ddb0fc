"""Simulator domain: the simulator_service asset, its resource and the supervisor sensor."""

import dagster as dg

from openpipe_dagster.simulator.assets import simulator_service, simulator_service_job
from openpipe_dagster.simulator.resources import SimulatorService
from openpipe_dagster.simulator.sensors import simulator_supervisor

defs = dg.Definitions(
    assets=[simulator_service],
    jobs=[simulator_service_job],
    sensors=[simulator_supervisor],
    resources={"simulator": SimulatorService()},
)
