//! The guide's example configurations (`config/examples/guide-*.cfg`) made runnable on a test
//! machine, for ringlb and haproxy alike.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The repository's root (fixture paths in the examples are relative to it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `config/examples/NAME` with only what a test machine needs changed: each
/// `127.0.0.1:PORT` of `ports` replaced by its address, the admin socket path by `sock`,
/// fixture paths made absolute, and no forking, chroot, user switch, 4 threads on 2 cores
/// or `maxconn 100000` (200k descriptors; the machine allows 20000, haproxy refuses to start
/// too): `nbthread 2` and `maxconn 4000` instead.
///
/// # Panics
/// If the example cannot be read (test setup).
pub fn guide_config(name: &str, ports: &[(u16, SocketAddr)], sock: &str) -> String {
    let root = repo_root();
    let path = root.join("config/examples").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim();
        if [
            "daemon",
            "chroot",
            "user ",
            "group ",
            "nbthread",
            "maxconn 100000",
        ]
        .iter()
        .any(|p| t.starts_with(p))
        {
            continue;
        }
        let mut l = line.replace("/tmp/ringlb-example-admin.sock", sock);
        for (port, addr) in ports {
            l = l.replace(&format!("127.0.0.1:{port}"), &addr.to_string());
        }
        l = l.replace(
            "config/fixtures/",
            &format!("{}/config/fixtures/", root.display()),
        );
        out.push_str(&l);
        out.push('\n');
        if t == "global" {
            out.push_str("    nbthread 2\n    maxconn 4000\n");
        }
    }
    out
}
