//! Plain `http://` for untrusted TUF mirrors: the same bounds and typed errors as HTTPS.

use std::time::Duration;

use ironroot_https_client::{Endpoint, HttpsClient, HttpsError, Limits};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// A plain HTTP server answering every connection with `head` then `body` (endless: forever).
async fn serve(head: &'static str, body: Vec<u8>, endless: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut req = [0u8; 4096];
                let _ = s.read(&mut req).await;
                let _ = s.write_all(head.as_bytes()).await;
                loop {
                    if s.write_all(&body).await.is_err() || !endless {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn plain_http_mirror_answers_within_the_bound_and_endless_bodies_are_cut() {
    let port = serve(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        b"hello".to_vec(),
        false,
    )
    .await;
    let e = Endpoint::parse_mirror(&format!("http://127.0.0.1:{port}/meta/")).unwrap();
    let client = HttpsClient::plain(e).unwrap();
    let r = client.request("GET", "/meta/x", &[], &[]).await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));

    let port = serve("HTTP/1.1 200 OK\r\n\r\n", vec![b'a'; 4096], true).await;
    let e = Endpoint::parse_mirror(&format!("http://127.0.0.1:{port}")).unwrap();
    let client = HttpsClient::plain(e).unwrap().with_limits(Limits {
        max_body: 10_000,
        timeout: Duration::from_secs(10),
    });
    let err = client.request("GET", "/", &[], &[]).await.unwrap_err();
    assert!(
        matches!(err, HttpsError::TooLarge { limit: 10_000 }),
        "{err}"
    );

    // An https:// endpoint is never sent in the clear.
    let tls = Endpoint::parse_mirror("https://127.0.0.1:1").unwrap();
    assert!(matches!(
        HttpsClient::plain(tls),
        Err(HttpsError::Config(_))
    ));
}
