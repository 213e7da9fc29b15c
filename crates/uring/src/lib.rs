//! Per-shard io_uring socket driver, driven from the shard's glommio executor.
