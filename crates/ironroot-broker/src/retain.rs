//! Retained messages: one per topic name, found by topic filter when a client subscribes.
//!
//! Stored in a tree of topic levels, so a SUBSCRIBE to `devices/+/status` visits only the
//! `devices/*/status` branch, not every retained message. An empty retained payload deletes the
//! topic's retained message ([MQTT-3.3.1-10]). The store is bounded by message count and total
//! payload bytes; a PUBLISH that would exceed either is refused (v5 `0x97 Quota exceeded`).

use std::collections::HashMap;
use std::str::Split;

/// A tree of concrete topic names holding one value per topic.
#[derive(Debug)]
pub(crate) struct TopicTree<T> {
    root: TNode<T>,
    len: usize,
}

#[derive(Debug)]
struct TNode<T> {
    children: HashMap<Box<str>, TNode<T>>,
    value: Option<T>,
}

impl<T> Default for TNode<T> {
    fn default() -> Self {
        TNode {
            children: HashMap::new(),
            value: None,
        }
    }
}

impl<T> Default for TopicTree<T> {
    fn default() -> Self {
        TopicTree {
            root: TNode::default(),
            len: 0,
        }
    }
}

impl<T> TopicTree<T> {
    /// Number of topics holding a value.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The value stored for `topic`.
    pub(crate) fn get(&self, topic: &str) -> Option<&T> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.value.as_ref()
    }

    /// Stores `value` for the concrete topic `topic`; returns the previous value.
    pub(crate) fn insert(&mut self, topic: &str, value: T) -> Option<T> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let old = node.value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the value of `topic`, pruning empty branches.
    pub(crate) fn remove(&mut self, topic: &str) -> Option<T> {
        let old = remove_in(&mut self.root, topic.split('/'));
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Calls `f` for the value of every topic the (valid) filter matches.
    pub(crate) fn for_each_match(&self, filter: &str, mut f: impl FnMut(&T)) {
        walk(&self.root, filter.split('/'), true, &mut f);
    }
}

fn remove_in<T>(node: &mut TNode<T>, mut levels: Split<'_, char>) -> Option<T> {
    let Some(level) = levels.next() else {
        return node.value.take();
    };
    let child = node.children.get_mut(level)?;
    let old = remove_in(child, levels);
    if child.value.is_none() && child.children.is_empty() {
        node.children.remove(level);
    }
    old
}

fn walk<T>(node: &TNode<T>, mut levels: Split<'_, char>, root: bool, f: &mut impl FnMut(&T)) {
    match levels.next() {
        None => {
            if let Some(v) = &node.value {
                f(v);
            }
        }
        Some("#") => {
            // `a/#` matches `a` itself and everything below.
            if let Some(v) = &node.value {
                f(v);
            }
            for (name, child) in &node.children {
                if root && name.starts_with('$') {
                    continue; // [MQTT-4.7.2-1]
                }
                all_values(child, f);
            }
        }
        Some("+") => {
            for (name, child) in &node.children {
                if root && name.starts_with('$') {
                    continue;
                }
                walk(child, levels.clone(), false, f);
            }
        }
        Some(level) => {
            if let Some(child) = node.children.get(level) {
                walk(child, levels, false, f);
            }
        }
    }
}

fn all_values<T>(node: &TNode<T>, f: &mut impl FnMut(&T)) {
    if let Some(v) = &node.value {
        f(v);
    }
    for child in node.children.values() {
        all_values(child, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::filter_matches;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn store_find_delete() {
        let mut t = TopicTree::default();
        t.insert("devices/a/status", "a-up");
        t.insert("devices/b/status", "b-up");
        t.insert("devices/a", "parent");
        t.insert("$SYS/uptime", "sys");
        assert_eq!(t.insert("devices/a/status", "a-down"), Some("a-up"));
        assert_eq!(t.len(), 4);

        let mut got = vec![];
        t.for_each_match("devices/+/status", |v| got.push(*v));
        got.sort();
        assert_eq!(got, vec!["a-down", "b-up"]);

        let mut got = vec![];
        t.for_each_match("devices/a/#", |v| got.push(*v));
        got.sort();
        assert_eq!(got, vec!["a-down", "parent"]);

        let mut got = vec![];
        t.for_each_match("#", |v| got.push(*v));
        assert_eq!(got.len(), 3, "# does not return $SYS topics");

        assert_eq!(t.remove("devices/a/status"), Some("a-down"));
        assert_eq!(t.remove("devices/a/status"), None);
        assert_eq!(t.get("devices/a"), Some(&"parent"));
        assert_eq!(t.len(), 3);
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just(String::new()),
            Just("$x".to_string()),
        ]
    }

    proptest! {
        /// Filter lookups return exactly the stored topics the reference matcher accepts.
        #[test]
        fn tree_agrees_with_reference_matcher(
            topics in prop::collection::vec(prop::collection::vec(level(), 1..5).prop_map(|v| v.join("/")), 0..24),
            deletions in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            filters in prop::collection::vec(
                (prop::collection::vec(prop_oneof![level(), Just("+".to_string())], 1..5), any::<bool>())
                    .prop_map(|(mut v, h)| { if h { v.push("#".into()); } v.join("/") }),
                1..8),
        ) {
            let mut tree = TopicTree::default();
            let mut model = BTreeMap::new();
            for t in &topics {
                tree.insert(t, t.clone());
                model.insert(t.clone(), ());
            }
            if !topics.is_empty() {
                for d in &deletions {
                    let t = &topics[d.index(topics.len())];
                    prop_assert_eq!(tree.remove(t).is_some(), model.remove(t).is_some());
                }
            }
            prop_assert_eq!(tree.len(), model.len());
            for f in &filters {
                let mut got = BTreeSet::new();
                tree.for_each_match(f, |v| { got.insert(v.clone()); });
                let want: BTreeSet<String> = model.keys().filter(|t| filter_matches(f, t)).cloned().collect();
                prop_assert_eq!(got, want, "filter {:?}", f);
            }
        }
    }
}
