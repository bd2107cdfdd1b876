//! Loopback checks and the shutdown signal.

use std::net::IpAddr;

/// Whether `host` names a loopback address (`127.0.0.0/8`, `::1`,
/// `localhost`), with or without IPv6 brackets.
pub fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a `Host` header value (`name`, `name:port`, `[v6]:port`) names
/// this machine only: a guard against DNS rebinding for servers bound to
/// loopback.
pub fn host_is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(
            host,
            |(name, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    name
                } else {
                    host
                }
            },
        )
    };
    is_loopback(name)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for h in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["0.0.0.0", "10.0.0.1", "example.com", "::", "localhost.evil.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn host_headers_with_ports() {
        for h in ["127.0.0.1:8080", "localhost:1", "[::1]:80", "[::1]", "localhost"] {
            assert!(host_is_loopback(h), "{h}");
        }
        for h in ["evil.com:80", "127.0.0.1.nip.io:80", "[::]:80", "10.1.1.1"] {
            assert!(!host_is_loopback(h), "{h}");
        }
    }
}
