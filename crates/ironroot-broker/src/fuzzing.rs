//! Entry points for the cargo-fuzz targets in `/fuzz` (feature `fuzzing`). Not a stable API.

use crate::identity::validate_client_id;
use crate::retain::TopicTree;
use crate::topic::{filter_matches, validate_topic_filter, validate_topic_name};
use crate::trie::SubTrie;
use ironroot_pki::Serial;

/// Interprets `data` as lines: `F<filter>` subscribes, `U<filter>` unsubscribes, `T<topic>`
/// routes a topic, `R<topic>` retains, `D<topic>` deletes a retained topic, `S<filter>` looks
/// retained messages up, anything else is tried as a client id and a hex serial. Every routing
/// and lookup answer is compared with the reference matcher; a difference panics.
pub fn routing(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut trie = SubTrie::default();
    let mut filters: Vec<String> = Vec::new();
    let mut tree = TopicTree::default();
    let mut topics: Vec<String> = Vec::new();
    for line in text.split('\n').take(256) {
        let (op, arg) = line.split_at(line.char_indices().nth(1).map_or(line.len(), |(i, _)| i));
        match op {
            "F" if validate_topic_filter(arg).is_ok() => {
                let key = (filters.len() % 7) as u64;
                trie.insert(arg, key, arg.to_string());
                filters.push(arg.to_string());
            }
            "U" => {
                for key in 0..7 {
                    trie.remove(arg, key);
                }
                filters.retain(|f| f != arg);
            }
            "T" if validate_topic_name(arg).is_ok() => {
                let mut got: Vec<String> = Vec::new();
                trie.for_each_match(arg, |_, f| got.push(f.clone()));
                got.sort();
                got.dedup();
                let mut want: Vec<String> = filters
                    .iter()
                    .filter(|f| filter_matches(f, arg))
                    .cloned()
                    .collect();
                want.sort();
                want.dedup();
                assert_eq!(got, want, "routing {arg:?}");
            }
            "R" if validate_topic_name(arg).is_ok() => {
                tree.insert(arg, arg.to_string());
                if !topics.iter().any(|t| t == arg) {
                    topics.push(arg.to_string());
                }
            }
            "D" => {
                tree.remove(arg);
                topics.retain(|t| t != arg);
            }
            "S" if validate_topic_filter(arg).is_ok() => {
                let mut got: Vec<String> = Vec::new();
                tree.for_each_match(arg, |t| got.push(t.clone()));
                got.sort();
                let mut want: Vec<String> = topics
                    .iter()
                    .filter(|t| filter_matches(arg, t))
                    .cloned()
                    .collect();
                want.sort();
                assert_eq!(got, want, "retained lookup {arg:?}");
            }
            _ => {
                let _ = validate_client_id(line);
                if let Ok(Some(sh)) = crate::topic::parse_shared(line) {
                    assert_eq!(format!("$share/{}/{}", sh.group, sh.filter), line);
                    assert!(validate_topic_filter(sh.filter).is_ok());
                }
                if let Ok(s) = Serial::from_hex(line) {
                    assert_eq!(Serial::from_hex(&s.to_string()).ok(), Some(s));
                }
            }
        }
    }
    assert_eq!(tree.len(), topics.len());
}

/// Feeds `data` to the certificate identity reader (CN + serial of a client certificate).
pub fn certificate_identity(data: &[u8]) {
    let _ = crate::identity::from_certificate(data);
    let _ = crate::identity::claimed(data);
}

#[cfg(test)]
mod tests {
    #[test]
    fn sample_inputs_agree() {
        super::routing(b"Fa/+\nF#\nFa/#\nR$x/a\nRa/b\nTa/b\nT$x/a\nSa/#\nS#\nUa/+\nTa/b\nDa/b\nS+/+\n0a:ff\ndev-1\n$share/g/a/+\n$share//a");
        super::certificate_identity(b"\x30\x03\x02\x01\x00");
    }
}
