import dagster as dg

from openpipe_dagster.definitions import defs


def test_definitions_load():
    assert isinstance(defs, dg.Definitions)
    repository = defs.get_repository_def()
    assert dg.AssetKey("kafka_topics") in repository.asset_graph.get_all_asset_keys()
