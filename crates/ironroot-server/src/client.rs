//! A minimal HTTPS/1.1 client for the operator CLI and the load generator: one request per
//! TLS connection (`Connection: close`), trusting only ironroot's CA chain, optionally with a
//! client certificate. Deliberately small: no redirects, no proxies, no cookies.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not `https://host:port`.
    #[error("invalid server URL {0:?}: expected https://HOST:PORT")]
    Url(String),
    /// The CA chain or client credential could not be loaded.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// Network or TLS failure.
    #[error("cannot reach the server: {0}")]
    Io(#[from] std::io::Error),
    /// The response is not HTTP/1.1.
    #[error("malformed HTTP response")]
    Malformed,
}

/// A server to talk to.
#[derive(Clone)]
pub struct Client {
    connector: TlsConnector,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client(https://{}:{})", self.host, self.port)
    }
}

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body (chunked encoding decoded).
    pub body: Vec<u8>,
}

/// Parses PEM certificates.
pub fn certs_from_pem(pem_text: &[u8]) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| ClientError::Tls(e.to_string()))?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect())
}

/// Parses a PKCS#8 or SEC1 private key PEM.
pub fn key_from_pem(pem_text: &[u8]) -> Result<PrivateKeyDer<'static>, ClientError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| ClientError::Tls(e.to_string()))?;
    for b in blocks {
        match b.tag() {
            "PRIVATE KEY" => return Ok(PrivateKeyDer::Pkcs8(b.into_contents().into())),
            "EC PRIVATE KEY" => return Ok(PrivateKeyDer::Sec1(b.into_contents().into())),
            _ => {}
        }
    }
    Err(ClientError::Tls("no private key in PEM".into()))
}

impl Client {
    /// A client for `url` trusting the CA certificates in `ca_pem` (e.g. `pki/chain.pem`),
    /// presenting `identity` (certificate chain, key) when given.
    pub fn new(
        url: &str,
        ca_pem: &[u8],
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<Self, ClientError> {
        let rest = url
            .trim()
            .strip_prefix("https://")
            .ok_or_else(|| ClientError::Url(url.to_owned()))?
            .trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| ClientError::Url(url.to_owned()))?;
        let port: u16 = port.parse().map_err(|_| ClientError::Url(url.to_owned()))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let mut roots = rustls::RootCertStore::empty();
        for c in certs_from_pem(ca_pem)? {
            roots.add(c).map_err(|e| ClientError::Tls(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Tls(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        config.resumption = rustls::client::Resumption::disabled();
        let server_name =
            ServerName::try_from(host.clone()).map_err(|_| ClientError::Url(url.to_owned()))?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            host,
            port,
            server_name,
        })
    }

    /// The same server with another client identity (new TLS configuration).
    pub fn with_identity(
        &self,
        ca_pem: &[u8],
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<Self, ClientError> {
        Self::new(
            &format!("https://{}:{}", self.host_for_url(), self.port),
            ca_pem,
            identity,
        )
    }

    fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// Sends one request on a new connection and reads the whole response.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, ClientError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let mut tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host_for_url(),
            body.len()
        );
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        tls.write_all(&out).await?;
        tls.flush().await?;
        let mut raw = Vec::new();
        // A server closing without close_notify after a complete response is fine here.
        match tls.read_to_end(&mut raw).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(e.into()),
        }
        parse_response(&raw)
    }
}

pub(crate) fn parse_response(raw: &[u8]) -> Result<Response, ClientError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ClientError::Malformed)?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| ClientError::Malformed)?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or(ClientError::Malformed)?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body).ok_or(ClientError::Malformed)?;
    }
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Sends `body` chunked (chunk sizes taken in turn from `sizes`, 0 meaning 1) and checks
/// that [`parse_response`] returns it whole (shared by the property tests and the fuzz target).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn check_chunked_round_trip(body: &[u8], sizes: &[usize]) {
    let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
        rest = tail;
        i += 1;
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = parse_response(&raw).expect("a well-formed chunked response parses");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_give_a_response_or_an_error(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(r) = parse_response(&raw) {
                prop_assert!(r.body.len() <= raw.len());
            }
        }

        #[test]
        fn chunked_bodies_come_back_whole(
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            sizes in proptest::collection::vec(0usize..300, 1..8),
        ) {
            check_chunked_round_trip(&body, &sizes);
        }

        #[test]
        fn truncated_chunked_bodies_are_errors(body in proptest::collection::vec(any::<u8>(), 1..512), cut in 1usize..64) {
            let mut raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
            raw.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            raw.extend_from_slice(&body);
            let cut = cut.min(body.len());
            raw.truncate(raw.len() - cut);
            prop_assert!(parse_response(&raw).is_err());
        }
    }

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"ok"[..]));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse_response(b"garbage").is_err());
    }
}
