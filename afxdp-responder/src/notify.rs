//! systemd's readiness protocol (`sd_notify(3)`), without libsystemd: when the service manager
//! sets `NOTIFY_SOCKET` (a unit with `Type=notify`), the responder sends `READY=1` to that
//! datagram socket once it serves every queue (the moment it emits the `ready` event) and
//! `STOPPING=1` when it starts to stop. Without `NOTIFY_SOCKET` nothing happens.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET`, if set. A path starting with `@` is an
/// abstract socket name. Returns whether a message was sent; a failure to send is not an error
/// for the responder (it keeps answering pings), only a missed notification.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return false;
    };
    let bytes = path.as_encoded_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
        }
        None => socket.send_to(state.as_bytes(), &path),
    };
    sent.is_ok()
}
