//! Shared setup: the origin binary cargo built for these tests.

use std::path::PathBuf;

use ringlb_testkit::{Origin, OriginOptions};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ringlb-origin"))
}

pub fn opts(name: &str) -> OriginOptions {
    OriginOptions {
        name: name.to_owned(),
        bin: Some(bin()),
        ..OriginOptions::default()
    }
}

pub fn origin(name: &str) -> Origin {
    Origin::start_with(opts(name))
}
