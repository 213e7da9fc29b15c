//! HAProxy-compatible configuration: grammar, typed model, keyword registry, diagnostics.
//! Pure logic: no sockets, no engine.
#![forbid(unsafe_code)]
