//! A minimal MQTT 3.1.1 / 5 client over tokio-rustls that writes exactly the packets a test
//! asks for — for the cases real clients cannot be made to produce (never acknowledging,
//! re-sending PUBREL after a reconnect, staying silent, oversized packets). Also used by the
//! load generator (`benches/broker_load.rs`).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub type Tls = TlsStream<TcpStream>;

pub fn client_config(
    ca: &CertificateDer<'static>,
    cert: Vec<u8>,
    key: PrivateKeyDer<'static>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![CertificateDer::from(cert)], key)
            .unwrap(),
    )
}

pub async fn dial(port: u16, cfg: Arc<ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Like [`dial`], from the local address `source`: Linux routes all of 127.0.0.0/8 to the
/// loopback interface, so `127.0.0.x` are distinct source IPs for the per-IP limits.
pub async fn dial_from(
    port: u16,
    source: std::net::IpAddr,
    cfg: Arc<ClientConfig>,
) -> std::io::Result<Tls> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(std::net::SocketAddr::new(source, 0))?;
    let tcp = sock.connect(([127, 0, 0, 1], port).into()).await?;
    tcp.set_nodelay(true)?;
    TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

pub fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![header];
    varint(body.len(), &mut v);
    v.extend_from_slice(body);
    v
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Options of a CONNECT.
#[derive(Clone, Debug)]
pub struct ConnectOpts {
    pub v5: bool,
    pub clean: bool,
    pub keepalive: u16,
    pub session_expiry: u32,
    pub receive_max: Option<u16>,
    pub max_packet: Option<u32>,
}

impl Default for ConnectOpts {
    fn default() -> Self {
        ConnectOpts {
            v5: false,
            clean: true,
            keepalive: 600,
            session_expiry: 0,
            receive_max: None,
            max_packet: None,
        }
    }
}

pub fn connect(id: &str, o: &ConnectOpts) -> Vec<u8> {
    let mut b = vec![];
    string("MQTT", &mut b);
    b.push(if o.v5 { 5 } else { 4 });
    b.push(if o.clean { 0x02 } else { 0 });
    b.extend_from_slice(&o.keepalive.to_be_bytes());
    if o.v5 {
        let mut props = vec![];
        if o.session_expiry > 0 {
            props.push(0x11);
            props.extend_from_slice(&o.session_expiry.to_be_bytes());
        }
        if let Some(r) = o.receive_max {
            props.push(0x21);
            props.extend_from_slice(&r.to_be_bytes());
        }
        if let Some(m) = o.max_packet {
            props.push(0x27);
            props.extend_from_slice(&m.to_be_bytes());
        }
        varint(props.len(), &mut b);
        b.extend_from_slice(&props);
    }
    string(id, &mut b);
    packet(0x10, &b)
}

pub fn subscribe(v5: bool, pid: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    if v5 {
        b.push(0);
    }
    string(filter, &mut b);
    b.push(qos);
    packet(0x82, &b)
}

pub fn publish(v5: bool, topic: &str, qos: u8, pid: u16, dup: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![];
    string(topic, &mut b);
    if qos > 0 {
        b.extend_from_slice(&pid.to_be_bytes());
    }
    if v5 {
        b.push(0);
    }
    b.extend_from_slice(payload);
    packet(0x30 | (qos << 1) | if dup { 0x08 } else { 0 }, &b)
}

/// PUBACK (0x40), PUBREC (0x50), PUBREL (0x62), PUBCOMP (0x70).
pub fn ack(header: u8, pid: u16) -> Vec<u8> {
    packet(header, &pid.to_be_bytes())
}

pub fn disconnect() -> Vec<u8> {
    vec![0xe0, 0]
}

/// One received packet: first byte and body.
#[derive(Debug, Clone)]
pub struct Packet {
    pub header: u8,
    pub body: Vec<u8>,
}

impl Packet {
    pub fn kind(&self) -> u8 {
        self.header & 0xf0
    }

    /// (topic, packet id, payload) of a PUBLISH.
    pub fn publish(&self, v5: bool) -> (String, Option<u16>, Vec<u8>) {
        let qos = (self.header >> 1) & 3;
        let tl = u16::from_be_bytes([self.body[0], self.body[1]]) as usize;
        let topic = String::from_utf8_lossy(&self.body[2..2 + tl]).into_owned();
        let mut off = 2 + tl;
        let pid = if qos > 0 {
            off += 2;
            Some(u16::from_be_bytes([self.body[off - 2], self.body[off - 1]]))
        } else {
            None
        };
        if v5 {
            let (len, n) = read_varint(&self.body[off..]);
            off += n + len;
        }
        (topic, pid, self.body[off..].to_vec())
    }
}

fn read_varint(b: &[u8]) -> (usize, usize) {
    let (mut v, mut mul, mut i) = (0usize, 1usize, 0usize);
    loop {
        let byte = b[i];
        v += (byte & 0x7f) as usize * mul;
        mul *= 128;
        i += 1;
        if byte & 0x80 == 0 {
            return (v, i);
        }
    }
}

pub async fn read_packet<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Packet> {
    let header = r.read_u8().await?;
    let (mut len, mut mul) = (0usize, 1usize);
    loop {
        let b = r.read_u8().await?;
        len += (b & 0x7f) as usize * mul;
        mul *= 128;
        if b & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok(Packet { header, body })
}

/// Reads a packet within `t`; `None` on timeout, `Err` when the connection ended.
pub async fn read_timeout<R: AsyncRead + Unpin>(
    r: &mut R,
    t: Duration,
) -> Option<std::io::Result<Packet>> {
    tokio::time::timeout(t, read_packet(r)).await.ok()
}

/// Sends CONNECT and returns the CONNACK (session present flag, return/reason code).
pub async fn mqtt_connect<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    id: &str,
    o: &ConnectOpts,
) -> std::io::Result<(bool, u8)> {
    io.write_all(&connect(id, o)).await?;
    io.flush().await?;
    let p = read_packet(io).await?;
    if p.header != 0x20 || p.body.len() < 2 {
        return Err(std::io::Error::other(format!(
            "expected CONNACK, got {:#x}",
            p.header
        )));
    }
    Ok((p.body[0] & 1 == 1, p.body[1]))
}

/// Waits until the peer closes the connection; `true` when it did within `t`.
pub async fn closed_within<R: AsyncRead + Unpin>(r: &mut R, t: Duration) -> bool {
    let mut buf = [0u8; 512];
    tokio::time::timeout(t, async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}
