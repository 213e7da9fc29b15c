//! Control shard: owns the model, drives health checks, runtime socket, stats merge.
