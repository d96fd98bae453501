//! The subscription trie: topic filters, level by level, with the subscribers of each filter.
//!
//! Routing a PUBLISH walks the concrete topic through the trie once, visiting the literal child,
//! the `+` child and the `#` entries of every level — cost proportional to the topic's depth and
//! the number of matching filters, not to the number of subscriptions.
//!
//! ```text
//!   root ─ "devices" ─ "+" ─ "telemetry"   {backend-1: QoS1}
//!        │          └ "dev-7" ─ "commands" {dev-7: QoS1}
//!        └ #: {auditor: QoS0}               (never sees "$..." topics)
//! ```
//!
//! Values are keyed by a `u64` (the session id), so one session has at most one entry per filter
//! and re-subscribing replaces the options.

use std::collections::HashMap;
use std::str::Split;

/// Subscribers grouped by topic filter.
#[derive(Debug)]
pub(crate) struct SubTrie<V> {
    root: Node<V>,
    len: usize,
}

#[derive(Debug)]
struct Node<V> {
    children: HashMap<Box<str>, Node<V>>,
    plus: Option<Box<Node<V>>>,
    /// Subscribers of `<this prefix>/#`.
    hash: HashMap<u64, V>,
    /// Subscribers whose filter ends exactly here.
    exact: HashMap<u64, V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            plus: None,
            hash: HashMap::new(),
            exact: HashMap::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.exact.is_empty()
    }
}

impl<V> Default for SubTrie<V> {
    fn default() -> Self {
        SubTrie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> SubTrie<V> {
    /// Number of (filter, key) entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds or replaces the entry of `key` under `filter` (a valid filter); returns the old value.
    pub(crate) fn insert(&mut self, filter: &str, key: u64, value: V) -> Option<V> {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                let old = node.hash.insert(key, value);
                if old.is_none() {
                    self.len += 1;
                }
                return old;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
        }
        let old = node.exact.insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the entry of `key` under `filter`, pruning empty branches.
    pub(crate) fn remove(&mut self, filter: &str, key: u64) -> Option<V> {
        let removed = remove_in(&mut self.root, filter.split('/'), key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The entry of `key` under `filter`, if any.
    pub(crate) fn get(&self, filter: &str, key: u64) -> Option<&V> {
        let mut node = &self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return node.hash.get(&key);
            }
            node = if level == "+" {
                node.plus.as_deref()?
            } else {
                node.children.get(level)?
            };
        }
        node.exact.get(&key)
    }

    /// Calls `f` for every entry whose filter matches the concrete topic `topic`.
    ///
    /// A session subscribed through several overlapping filters is visited once per filter;
    /// the caller merges them.
    pub(crate) fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(u64, &'a V)) {
        let dollar = topic.starts_with('$');
        walk(&self.root, topic.split('/'), true, dollar, &mut f);
    }
}

fn walk<'a, V>(
    node: &'a Node<V>,
    mut levels: Split<'_, char>,
    root: bool,
    dollar: bool,
    f: &mut impl FnMut(u64, &'a V),
) {
    // [MQTT-4.7.2-1]: wildcards in the first level never match a '$' topic.
    let wildcards = !(root && dollar);
    if wildcards {
        for (k, v) in &node.hash {
            f(*k, v);
        }
    }
    match levels.next() {
        None => {
            for (k, v) in &node.exact {
                f(*k, v);
            }
        }
        Some(level) => {
            if let Some(child) = node.children.get(level) {
                walk(child, levels.clone(), false, dollar, f);
            }
            if wildcards && let Some(plus) = &node.plus {
                walk(plus, levels, false, dollar, f);
            }
        }
    }
}

fn remove_in<V>(node: &mut Node<V>, mut levels: Split<'_, char>, key: u64) -> Option<V> {
    let Some(level) = levels.next() else {
        return node.exact.remove(&key);
    };
    let rest_empty = levels.clone().next().is_none();
    if level == "#" && rest_empty {
        return node.hash.remove(&key);
    }
    if level == "+" {
        let plus = node.plus.as_deref_mut()?;
        let removed = remove_in(plus, levels, key);
        if plus.is_empty() {
            node.plus = None;
        }
        removed
    } else {
        let child = node.children.get_mut(level)?;
        let removed = remove_in(child, levels, key);
        if child.is_empty() {
            node.children.remove(level);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::filter_matches;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn insert_match_remove() {
        let mut t = SubTrie::default();
        assert_eq!(t.insert("devices/+/telemetry", 1, "backend"), None);
        assert_eq!(t.insert("devices/dev-7/commands", 2, "dev-7"), None);
        assert_eq!(t.insert("#", 3, "all"), None);
        assert_eq!(t.insert("#", 3, "all-again"), Some("all"));
        assert_eq!(t.len(), 3);

        let mut seen = vec![];
        t.for_each_match("devices/dev-7/telemetry", |k, v| seen.push((k, *v)));
        seen.sort();
        assert_eq!(seen, vec![(1, "backend"), (3, "all-again")]);

        let mut seen = vec![];
        t.for_each_match("$SYS/x", |k, _| seen.push(k));
        assert!(seen.is_empty(), "# must not see $ topics");

        assert_eq!(t.remove("devices/+/telemetry", 1), Some("backend"));
        assert_eq!(t.remove("devices/+/telemetry", 1), None);
        assert_eq!(t.get("#", 3), Some(&"all-again"));
        assert_eq!(t.remove("#", 3), Some("all-again"));
        assert_eq!(t.remove("devices/dev-7/commands", 2), Some("dev-7"));
        assert_eq!(t.len(), 0);
        assert!(t.root.is_empty(), "empty branches are pruned");
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just(String::new()),
            Just("$x".to_string()),
        ]
    }

    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..5).prop_map(|v| v.join("/"))
    }

    fn filter() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop_oneof![level(), Just("+".to_string())], 1..5),
            any::<bool>(),
        )
            .prop_map(|(mut v, hash)| {
                if hash {
                    v.push("#".to_string());
                }
                v.join("/")
            })
    }

    proptest! {
        /// The trie finds exactly the filters the reference matcher accepts.
        #[test]
        fn trie_agrees_with_reference_matcher(
            filters in prop::collection::vec(filter(), 0..24),
            topics in prop::collection::vec(topic(), 1..8),
            removals in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut trie = SubTrie::default();
            let mut live: BTreeSet<(String, u64)> = BTreeSet::new();
            for (i, f) in filters.iter().enumerate() {
                let key = (i % 5) as u64;
                trie.insert(f, key, f.clone());
                live.insert((f.clone(), key));
            }
            if !filters.is_empty() {
                for r in &removals {
                    let i = r.index(filters.len());
                    let key = (i % 5) as u64;
                    let was = live.remove(&(filters[i].clone(), key));
                    prop_assert_eq!(trie.remove(&filters[i], key).is_some(), was);
                }
            }
            prop_assert_eq!(trie.len(), live.len());
            for t in &topics {
                let mut got = BTreeSet::new();
                trie.for_each_match(t, |k, v| { got.insert((v.clone(), k)); });
                let want: BTreeSet<_> = live.iter().filter(|(f, _)| filter_matches(f, t)).cloned().collect();
                prop_assert_eq!(got, want, "topic {:?}", t);
            }
        }
    }
}
