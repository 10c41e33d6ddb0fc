"""Software-defined assets, one module per domain (asset name = table name where it is one).

infrastructure: kafka_topics, database_schema, table_partitions · topics: the Kafka topics
as external assets · simulator and flink: the two long-running services · sinks: one asset
per table fed from Kafka, and dead_letters · rollups: time-partitioned SQL rollups ·
reports: alert_report and pipeline_incidents.
"""
