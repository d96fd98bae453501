//! HTTP/1.1 response parsing with a bound on the body: the head, a `Content-Length` or
//! chunked body, read until the server closes the connection.

use crate::HttpsError;

/// Longest response head (status line and headers) accepted.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// A response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body (chunked encoding decoded).
    pub body: Vec<u8>,
    /// The server's clock from its `Date` header (Unix seconds), if it sent a valid one: how a
    /// device with a wrong clock learns the CA's time.
    pub date: Option<i64>,
}

/// What the head says about the body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    /// Bytes of the head including the blank line.
    pub(crate) len: usize,
    pub(crate) status: u16,
    pub(crate) chunked: bool,
    pub(crate) content_length: Option<usize>,
    pub(crate) date: Option<i64>,
}

/// Parses the head once `raw` holds it; `Ok(None)` while it is incomplete.
pub(crate) fn parse_head(raw: &[u8]) -> Result<Option<Head>, HttpsError> {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        if raw.len() > MAX_HEAD {
            return Err(HttpsError::Malformed("response head too long"));
        }
        return Ok(None);
    };
    if split > MAX_HEAD {
        return Err(HttpsError::Malformed("response head too long"));
    }
    let head = std::str::from_utf8(&raw[..split])
        .map_err(|_| HttpsError::Malformed("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or(HttpsError::Malformed("no HTTP/1.x status line"))?;
    let mut chunked = false;
    let mut content_length = None;
    let mut date = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name == "date" {
            date = httpdate::parse_http_date(value)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_secs()).ok());
        } else if name == "content-length" {
            content_length = Some(
                value
                    .parse()
                    .map_err(|_| HttpsError::Malformed("bad content-length"))?,
            );
        }
    }
    Ok(Some(Head {
        len: split + 4,
        status,
        chunked,
        content_length,
        date,
    }))
}

/// Most raw body bytes read for a body of at most `max_body` bytes: chunk framing may add a
/// little, so a chunked body may take up to half again plus 4 KiB on the wire.
pub(crate) fn max_raw_body(head: &Head, max_body: usize) -> usize {
    if head.chunked {
        max_body.saturating_add(max_body / 2).saturating_add(4096)
    } else {
        max_body
    }
}

/// Parses a complete response (everything the server sent before closing), refusing a body
/// longer than `max_body` bytes with [`HttpsError::TooLarge`].
pub fn parse_response(raw: &[u8], max_body: usize) -> Result<Response, HttpsError> {
    let head = parse_head(raw)?.ok_or(HttpsError::Malformed("no end of the response head"))?;
    let too_large = HttpsError::TooLarge { limit: max_body };
    if head.content_length.is_some_and(|n| n > max_body) {
        return Err(too_large);
    }
    let rest = &raw[head.len..];
    let body = if head.chunked {
        dechunk(rest, max_body)?
    } else {
        let body = match head.content_length {
            Some(n) => rest.get(..n).ok_or(HttpsError::Malformed(
                "body shorter than its content-length",
            ))?,
            None => rest,
        };
        if body.len() > max_body {
            return Err(too_large);
        }
        body.to_vec()
    };
    Ok(Response {
        status: head.status,
        body,
        date: head.date,
    })
}

fn dechunk(mut data: &[u8], max_body: usize) -> Result<Vec<u8>, HttpsError> {
    let bad = || HttpsError::Malformed("bad chunked encoding");
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(HttpsError::Malformed("truncated chunked body"))?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| bad())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if size > max_body.saturating_sub(out.len()) {
            return Err(HttpsError::TooLarge { limit: max_body });
        }
        out.extend_from_slice(
            data.get(..size)
                .ok_or(HttpsError::Malformed("truncated chunked body"))?,
        );
        data = data
            .get(size + 2..)
            .ok_or(HttpsError::Malformed("truncated chunked body"))?;
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
    let r = parse_response(&raw, body.len()).expect("a well-formed chunked response parses");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    if !body.is_empty() {
        assert!(
            matches!(
                parse_response(&raw, body.len() - 1),
                Err(HttpsError::TooLarge { .. })
            ),
            "a chunked body one byte over the bound is refused"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_give_a_response_or_an_error(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(r) = parse_response(&raw, usize::MAX) {
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
            prop_assert!(parse_response(&raw, usize::MAX).is_err());
        }
    }

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok", 2).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"ok"[..]));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            5,
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse_response(b"garbage", 10).is_err());
    }

    #[test]
    fn the_server_clock_is_read_from_a_valid_date_header_only() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 0\r\n\r\n",
            0,
        )
        .unwrap();
        assert_eq!(r.date, Some(784_111_777));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ndate: yesterday-ish\r\ncontent-length: 0\r\n\r\n",
            0,
        )
        .unwrap();
        assert_eq!(r.date, None);
    }

    #[test]
    fn a_body_over_the_bound_is_refused_and_one_at_it_accepted() {
        let raw = b"HTTP/1.1 200 OK\r\n\r\n0123456789";
        assert_eq!(parse_response(raw, 10).unwrap().body, b"0123456789");
        assert!(matches!(
            parse_response(raw, 9),
            Err(HttpsError::TooLarge { limit: 9 })
        ));
        let announced = b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n";
        assert!(matches!(
            parse_response(announced, 10),
            Err(HttpsError::TooLarge { limit: 10 })
        ));
    }
}
