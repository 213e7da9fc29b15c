//! Helpers for integration tests: free ports, child processes cleaned up by pid.
