//! HAProxy's hash functions for the `djb2`, `sdbm`, `wt6` and `crc32` converters (shared with
//! the balancer so a converter and `hash-type` give the same numbers).

pub(crate) use ringlb_balance::hash::{crc32, djb2, sdbm, wt6};
