//! ironroot's one HTTPS/1.1 client, for the operator CLI and the device agent.
//!
//! ```text
//!  caller ──(rustls ClientConfig: trust anchors, optional client certificate)──┐
//!                                                                              ▼
//!  HttpsClient::request ── TCP ── TLS ── one HTTP/1.1 request, Connection: close
//!                                   └─ response read to EOF, at most Limits::max_body
//!                                      bytes of body, all within Limits::timeout
//! ```
//!
//! The principal type is [`HttpsClient`], built from an [`Endpoint`] (parsed from
//! `https://HOST[:PORT]`) and the caller's rustls configuration. Every way a request can fail
//! is an [`HttpsError`]; a server that sends more than the bound is cut off with
//! [`HttpsError::TooLarge`] once the bound is passed, not after reading everything.
//!
//! Deliberately small: no redirects, no proxies, no cookies, no connection reuse.
//!
//! Plain `http://` exists for one purpose: TUF mirrors, which are untrusted by design (every
//! byte fetched is checked against signed metadata). [`Endpoint::parse_mirror`] accepts it,
//! [`HttpsClient::plain`] builds such a client, with the same bounds and errors.
//!
//! Public API: [`HttpsClient`], [`Endpoint`], [`Limits`], [`Response`], [`HttpsError`],
//! [`parse_response`].
#![forbid(unsafe_code)]

mod error;
mod response;

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub use error::HttpsError;
pub use response::{Response, parse_response};

/// Where requests go: host and port of an `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// `http://` (no TLS): only from [`Endpoint::parse_mirror`].
    plain: bool,
}

impl Endpoint {
    /// Parses `https://HOST[:PORT][/...]` (IPv6 hosts in brackets). Without a port,
    /// `default_port` is used, or the URL is refused when there is none.
    pub fn parse(url: &str, default_port: Option<u16>) -> Result<Self, HttpsError> {
        let rest = url.trim().strip_prefix("https://").ok_or(HttpsError::Url {
            url: url.to_owned(),
            reason: "must start with https://",
        })?;
        Self::parse_authority(url, rest, default_port, false)
    }

    /// Parses the URL of an untrusted mirror whose content is verified by other means (TUF):
    /// `https://HOST[:PORT]` (default port 443) or plain `http://HOST[:PORT]` (default 80).
    pub fn parse_mirror(url: &str) -> Result<Self, HttpsError> {
        let t = url.trim();
        match (t.strip_prefix("https://"), t.strip_prefix("http://")) {
            (Some(rest), _) => Self::parse_authority(url, rest, Some(443), false),
            (None, Some(rest)) => Self::parse_authority(url, rest, Some(80), true),
            _ => Err(HttpsError::Url {
                url: url.to_owned(),
                reason: "must start with https:// or http://",
            }),
        }
    }

    /// Whether this is a plain `http://` endpoint.
    pub fn is_plain_http(&self) -> bool {
        self.plain
    }

    fn parse_authority(
        url: &str,
        rest: &str,
        default_port: Option<u16>,
        plain: bool,
    ) -> Result<Self, HttpsError> {
        let bad = |reason| HttpsError::Url {
            url: url.to_owned(),
            reason,
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None => default_port.ok_or_else(|| bad("no port"))?,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            plain,
        })
    }

    /// The host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port` as in a URL and a `Host` header (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Bounds on one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest response body accepted, in bytes.
    pub max_body: usize,
    /// Longest the whole exchange (connect, handshake, request, response) may take.
    pub timeout: Duration,
}

impl Default for Limits {
    /// 16 MiB and 60 s: far above any answer of the operator API, far below what would hurt.
    fn default() -> Self {
        Self {
            max_body: 16 * 1024 * 1024,
            timeout: Duration::from_secs(60),
        }
    }
}

/// A client for one server with one TLS configuration. Cheap to clone.
#[derive(Clone)]
pub struct HttpsClient {
    endpoint: Endpoint,
    server_name: ServerName<'static>,
    /// `None` for a plain `http://` mirror.
    connector: Option<TlsConnector>,
    limits: Limits,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.endpoint.plain { "http" } else { "https" };
        write!(f, "HttpsClient({scheme}://{})", self.endpoint.authority())
    }
}

impl HttpsClient {
    /// A client for `endpoint` using `config` (which decides the trusted roots and any client
    /// certificate), with the default [`Limits`].
    pub fn new(endpoint: Endpoint, config: Arc<ClientConfig>) -> Result<Self, HttpsError> {
        Self::build(endpoint, Some(TlsConnector::from(config)))
    }

    /// A client for a plain `http://` mirror endpoint (see [`Endpoint::parse_mirror`]); an
    /// `https://` endpoint needs [`HttpsClient::new`].
    pub fn plain(endpoint: Endpoint) -> Result<Self, HttpsError> {
        if !endpoint.plain {
            return Err(HttpsError::Config(
                "an https:// endpoint needs a TLS configuration".into(),
            ));
        }
        Self::build(endpoint, None)
    }

    fn build(endpoint: Endpoint, connector: Option<TlsConnector>) -> Result<Self, HttpsError> {
        if endpoint.plain && connector.is_some() {
            return Err(HttpsError::Config(
                "an http:// endpoint has no TLS (use HttpsClient::plain)".into(),
            ));
        }
        let server_name =
            ServerName::try_from(endpoint.host.clone()).map_err(|_| HttpsError::Url {
                url: endpoint.authority(),
                reason: "not a valid host name or IP address",
            })?;
        Ok(Self {
            endpoint,
            server_name,
            connector,
            limits: Limits::default(),
        })
    }

    /// The same client with other bounds.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The server this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The bounds of each exchange.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Sends one request on a new connection and reads the whole response (bounded, within
    /// the timeout). `headers` are sent as given after `Host`, `Connection` and
    /// `Content-Length`.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpsError> {
        let addr = self.endpoint.authority();
        match tokio::time::timeout(
            self.limits.timeout,
            self.exchange(&addr, method, path, headers, body),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(HttpsError::Timeout {
                addr,
                after: self.limits.timeout,
            }),
        }
    }

    async fn exchange(
        &self,
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpsError> {
        let io = |source| HttpsError::Io {
            addr: addr.to_owned(),
            source,
        };
        let tcp = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
            .await
            .map_err(|source| HttpsError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        tcp.set_nodelay(true).map_err(io)?;
        let Some(connector) = &self.connector else {
            return self.talk(tcp, addr, method, path, headers, body).await;
        };
        let tls = connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|source| HttpsError::Handshake {
                addr: addr.to_owned(),
                source,
            })?;
        self.talk(tls, addr, method, path, headers, body).await
    }

    /// One request and its bounded response over an established stream (TLS or plain).
    async fn talk<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        &self,
        mut tls: S,
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpsError> {
        let io = |source| HttpsError::Io {
            addr: addr.to_owned(),
            source,
        };
        let mut out = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(body);
        tls.write_all(&out).await.map_err(io)?;
        tls.flush().await.map_err(io)?;

        let max_body = self.limits.max_body;
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        // The bound on raw bytes: known once the head is in.
        let mut cap = response::MAX_HEAD + 4;
        loop {
            let n = match tls.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                // A server closing without close_notify after a complete response is fine.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {
                    break;
                }
                Err(e) => return Err(io(e)),
            };
            raw.extend_from_slice(&buf[..n]);
            if let Some(head) = response::parse_head(&raw)? {
                if head.content_length.is_some_and(|len| len > max_body) {
                    return Err(HttpsError::TooLarge { limit: max_body });
                }
                cap = head
                    .len
                    .saturating_add(response::max_raw_body(&head, max_body));
            }
            if raw.len() > cap {
                return Err(HttpsError::TooLarge { limit: max_body });
            }
        }
        parse_response(&raw, max_body)
    }
}

/// Entry points for the cargo-fuzz targets in `/fuzz` (feature `fuzzing`). Not a stable API.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    /// The response parser: any bytes give a response or a typed error, a body never exceeds
    /// the bytes received, and a body sent in chunks of any sizes comes back whole.
    pub fn response(data: &[u8]) {
        if let Ok(r) = crate::parse_response(data, usize::MAX) {
            assert!(r.body.len() <= data.len());
        }
        let sizes: Vec<usize> = data.iter().take(8).map(|b| usize::from(*b % 17)).collect();
        crate::response::check_chunked_round_trip(data, &sizes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_and_without_port() {
        let e = Endpoint::parse("https://127.0.0.1:9443/", None).unwrap();
        assert_eq!((e.host(), e.port()), ("127.0.0.1", 9443));
        let e = Endpoint::parse("https://localhost", Some(8443)).unwrap();
        assert_eq!(e.authority(), "localhost:8443");
        let e = Endpoint::parse("https://[::1]:8443/x", None).unwrap();
        assert_eq!((e.host(), e.authority().as_str()), ("::1", "[::1]:8443"));
        for bad in [
            "http://localhost:1",
            "https://:1",
            "https://h:99999",
            "https://[::1",
        ] {
            assert!(
                matches!(Endpoint::parse(bad, Some(1)), Err(HttpsError::Url { .. })),
                "{bad}"
            );
        }
        let m = Endpoint::parse_mirror("http://127.0.0.1/metadata/").unwrap();
        assert!(m.is_plain_http() && m.port() == 80);
        let m = Endpoint::parse_mirror("https://h:8443/").unwrap();
        assert!(!m.is_plain_http() && m.port() == 8443);
        assert!(Endpoint::parse_mirror("ftp://h/").is_err());
        assert!(
            !Endpoint::parse("https://h:1/", None)
                .unwrap()
                .is_plain_http()
        );
        assert!(matches!(
            Endpoint::parse("https://localhost", None),
            Err(HttpsError::Url {
                reason: "no port",
                ..
            })
        ));
    }
}
