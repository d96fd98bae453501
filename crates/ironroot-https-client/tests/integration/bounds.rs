//! Bounded responses, timeouts and TLS refusals against real TLS servers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ironroot_https_client::{Endpoint, HttpsClient, HttpsError, Limits};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::server::{Script, TestServer, start, stranger_config};

const LIMIT: usize = 64 * 1024;

fn client(server: &TestServer, config: Arc<rustls::ClientConfig>) -> HttpsClient {
    let endpoint =
        Endpoint::parse(&format!("https://localhost:{}", server.addr.port()), None).unwrap();
    HttpsClient::new(endpoint, config)
        .unwrap()
        .with_limits(Limits {
            max_body: LIMIT,
            timeout: Duration::from_secs(5),
        })
}

/// Reads the request head, then writes `head` and, when `endless`, body bytes until the
/// client goes away (counting them in `sent`), else `body` once.
fn answer(head: &'static str, body: Vec<u8>, endless: bool, sent: Arc<AtomicUsize>) -> Script {
    Arc::new(move |mut tls| {
        let body = body.clone();
        let sent = sent.clone();
        Box::pin(async move {
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            if tls.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            loop {
                if tls.write_all(&body).await.is_err() {
                    return;
                }
                sent.fetch_add(body.len(), Ordering::Relaxed);
                if !endless {
                    break;
                }
            }
            let _ = tls.shutdown().await;
        })
    })
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_bound_with_a_typed_error() {
    let sent = Arc::new(AtomicUsize::new(0));
    let server = start(answer(
        "HTTP/1.1 200 OK\r\n\r\n",
        vec![b'x'; 8192],
        true,
        sent.clone(),
    ))
    .await;
    let started = Instant::now();
    let err = client(&server, server.client_config.clone())
        .request("GET", "/big", &[], b"")
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpsError::TooLarge { limit: LIMIT }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "not cut early");
    assert!(err.to_string().contains("65536 bytes"), "{err}");
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_at_the_bound() {
    let chunk = format!("2000\r\n{}\r\n", "y".repeat(0x2000)).into_bytes();
    let server = start(answer(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunk,
        true,
        Arc::default(),
    ))
    .await;
    let err = client(&server, server.client_config.clone())
        .request("GET", "/big", &[], b"")
        .await
        .unwrap_err();
    assert!(matches!(err, HttpsError::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn an_announced_over_long_body_is_refused_before_it_is_read() {
    let sent = Arc::new(AtomicUsize::new(0));
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n";
    let server = start(answer(head, vec![b'z'; 8192], true, sent.clone())).await;
    let err = client(&server, server.client_config.clone())
        .request("GET", "/big", &[], b"")
        .await
        .unwrap_err();
    assert!(matches!(err, HttpsError::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn a_body_exactly_at_the_bound_is_accepted() {
    let server = start(answer(
        "HTTP/1.1 201 Created\r\n\r\n",
        vec![b'a'; LIMIT],
        false,
        Arc::default(),
    ))
    .await;
    let r = client(&server, server.client_config.clone())
        .request("POST", "/ok", &[("content-type", "text/plain")], b"hi")
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.body.len(), LIMIT);
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = start(Arc::new(|tls| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(tls);
        })
    }))
    .await;
    let mut c = client(&server, server.client_config.clone());
    c = c.with_limits(Limits {
        max_body: LIMIT,
        timeout: Duration::from_millis(500),
    });
    let started = Instant::now();
    let err = c.request("GET", "/", &[], b"").await.unwrap_err();
    assert!(matches!(err, HttpsError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_untrusted_server_is_a_handshake_error_and_a_closed_port_is_unreachable() {
    let server = start(answer(
        "HTTP/1.1 200 OK\r\n\r\n",
        b"ok".to_vec(),
        false,
        Arc::default(),
    ))
    .await;
    // The same server answers a client that trusts its CA.
    let ok = client(&server, server.client_config.clone())
        .request("GET", "/", &[], b"")
        .await
        .unwrap();
    assert_eq!(ok.body, b"ok");
    let err = client(&server, stranger_config())
        .request("GET", "/", &[], b"")
        .await
        .unwrap_err();
    assert!(matches!(err, HttpsError::Handshake { .. }), "{err:?}");
    assert!(!err.is_unreachable());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = Endpoint::parse(&format!("https://127.0.0.1:{port}"), None).unwrap();
    let err = HttpsClient::new(endpoint, server.client_config.clone())
        .unwrap()
        .request("GET", "/", &[], b"")
        .await
        .unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
}
