//! Per-core data plane: listeners, connections, backend pools, proxy phases.
