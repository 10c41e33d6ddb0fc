"""PostgreSQL storage: connections and locks (db), versioned migrations (migrations), applying
them and native-partition upkeep (schema). docs/architecture.md §5."""
