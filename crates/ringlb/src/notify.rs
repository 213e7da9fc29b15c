//! systemd's readiness protocol (`Type=notify`, sd_notify(3)) without libsystemd: one datagram
//! to `$NOTIFY_SOCKET` (a path, or an abstract name written `@name`). Without the variable,
//! nothing is sent. Workers send `READY=1` themselves (the unit sets `NotifyAccess=all`).

use std::os::unix::net::UnixDatagram;

/// Sends `state` (`READY=1`, `RELOADING=1`, `STOPPING=1`...) to systemd if it asked for it.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
        }
        None => sock.send_to(state.as_bytes(), &path),
    };
    // A missing or full notify socket is not a reason to stop serving.
    let _ = sent;
}
