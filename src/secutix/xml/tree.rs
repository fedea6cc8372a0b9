//! One XML product in memory, and a serde `Deserializer` over it for the lenient wire types.
//!
//! The SOAP reader used to turn each product into a `serde_json::Value` (a map and a string per element)
//! and deserialise that. This tree is flat instead: nodes in one `Vec`, element names interned once per
//! parse, texts in one arena, all reused from one product to the next, and the deserializer reads it in
//! place (borrowed strings). The mapping is the same as before, the JAX-WS conventions of DESIGN §2:
//! an element with children is a map; repeated children are a sequence (also when not adjacent); text is
//! a string (kept as is); `xsi:nil` or an empty element is null.

use std::collections::HashMap;

use serde::de::value::{BorrowedStrDeserializer, Error};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

const NONE: u32 = u32::MAX;

/// FNV-1a: element names are short and trusted to be few; SipHash showed in the profile.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Interned element names (local names), for the whole parse.
#[derive(Debug, Default)]
pub(crate) struct Names {
    list: Vec<Box<str>>,
    map: HashMap<Box<str>, u32, std::hash::BuildHasherDefault<Fnv>>,
}

impl Names {
    /// The id of `name`, adding it when new.
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.map.get(name) {
            return id;
        }
        let id = u32::try_from(self.list.len()).unwrap_or(NONE - 1);
        self.list.push(name.into());
        self.map.insert(name.into(), id);
        id
    }

    /// The name of `id`.
    pub(crate) fn get(&self, id: u32) -> &str {
        self.list.get(id as usize).map_or("", |s| s)
    }
}

#[derive(Debug, Clone, Copy)]
struct Node {
    name: u32,
    text_start: u32,
    text_end: u32,
    first_child: u32,
    next_sibling: u32,
    nil: bool,
}

/// The elements of one product (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    text: String,
    /// Open elements, and the last child of each (to link the next one).
    open: Vec<(u32, u32)>,
}

impl Tree {
    /// Empties the tree, keeping its memory.
    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
        self.text.clear();
        self.open.clear();
    }

    /// An element opens.
    pub(crate) fn start(&mut self, name: u32, nil: bool) {
        let idx = self.nodes.len() as u32;
        let at = self.text.len() as u32;
        self.nodes.push(Node {
            name,
            text_start: at,
            text_end: at,
            first_child: NONE,
            next_sibling: NONE,
            nil,
        });
        if let Some((parent, last)) = self.open.last_mut() {
            if *last == NONE {
                self.nodes[*parent as usize].first_child = idx;
            } else {
                self.nodes[*last as usize].next_sibling = idx;
            }
            *last = idx;
        }
        self.open.push((idx, NONE));
    }

    /// Text of the open element (text around child elements is kept only while it is contiguous; an
    /// element with children is a map, whose text does not count).
    pub(crate) fn text(&mut self, s: &str) {
        if let Some(&(idx, _)) = self.open.last() {
            let node = &mut self.nodes[idx as usize];
            if node.text_end as usize == self.text.len() {
                self.text.push_str(s);
                node.text_end = self.text.len() as u32;
            }
        }
    }

    /// Elements open (the product's own nesting depth).
    pub(crate) fn depth(&self) -> usize {
        self.open.len()
    }

    /// The name of the open element.
    pub(crate) fn open_name(&self) -> u32 {
        self.open.last().map_or(NONE, |(idx, _)| self.nodes[*idx as usize].name)
    }

    /// The open element closes; true when it was the root.
    pub(crate) fn end(&mut self) -> bool {
        self.open.pop();
        self.open.is_empty()
    }
}

/// A node of a [`Tree`] as a serde `Deserializer`.
#[derive(Clone, Copy)]
pub(crate) struct NodeDe<'a> {
    tree: &'a Tree,
    names: &'a Names,
    idx: u32,
}

impl<'a> NodeDe<'a> {
    /// The root element (the product).
    pub(crate) fn root(tree: &'a Tree, names: &'a Names) -> Self {
        Self { tree, names, idx: 0 }
    }

    fn node(&self) -> &'a Node {
        &self.tree.nodes[self.idx as usize]
    }

    fn at(&self, idx: u32) -> Self {
        Self { idx, ..*self }
    }

    /// Text, or `None` for null (nil or empty).
    fn scalar(&self) -> Option<&'a str> {
        let n = self.node();
        let t = &self.tree.text[n.text_start as usize..n.text_end as usize];
        (!n.nil && !t.trim().is_empty()).then_some(t)
    }
}

impl<'de> Deserializer<'de> for NodeDe<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node().first_child != NONE {
            return visitor.visit_map(NodeMap::new(self));
        }
        match self.scalar() {
            None => visitor.visit_unit(),
            Some(t) => visitor.visit_borrowed_str(t),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node().first_child == NONE && self.scalar().is_none() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// The children of a node as map entries: each name once, its elements as one value or a sequence.
struct NodeMap<'a> {
    de: NodeDe<'a>,
    /// Adjacent repetition (the JAX-WS case): the next child to read.
    next: u32,
    /// A name repeated apart from its first run: the children grouped by name, in first-seen order.
    groups: Option<std::vec::IntoIter<(u32, Vec<u32>)>>,
    /// The value of the key just read.
    value: Option<Value>,
}

enum Value {
    Run { first: u32, count: usize },
    Group(Vec<u32>),
}

impl<'a> NodeMap<'a> {
    fn new(de: NodeDe<'a>) -> Self {
        let nodes = &de.tree.nodes;
        let first = de.node().first_child;
        // Names repeated apart from their run? A bitset of names seen, for the ids that fit.
        let mut seen = [0u64; 16];
        let mut scattered = false;
        let mut prev = NONE;
        let mut c = first;
        while c != NONE {
            let name = nodes[c as usize].name;
            if name != prev {
                let (w, b) = ((name / 64) as usize, name % 64);
                if w >= seen.len() {
                    scattered = true; // many names: take the general path
                    break;
                }
                if seen[w] & (1 << b) != 0 {
                    scattered = true;
                    break;
                }
                seen[w] |= 1 << b;
            }
            prev = name;
            c = nodes[c as usize].next_sibling;
        }
        let groups = scattered.then(|| {
            let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
            let mut c = first;
            while c != NONE {
                let name = nodes[c as usize].name;
                match groups.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, v)) => v.push(c),
                    None => groups.push((name, vec![c])),
                }
                c = nodes[c as usize].next_sibling;
            }
            groups.into_iter()
        });
        Self {
            de,
            next: first,
            groups,
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for NodeMap<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let nodes = &self.de.tree.nodes;
        let name = match &mut self.groups {
            Some(groups) => match groups.next() {
                None => return Ok(None),
                Some((name, members)) => {
                    self.value = Some(Value::Group(members));
                    name
                }
            },
            None => {
                if self.next == NONE {
                    return Ok(None);
                }
                let first = self.next;
                let name = nodes[first as usize].name;
                let mut count = 0;
                while self.next != NONE && nodes[self.next as usize].name == name {
                    count += 1;
                    self.next = nodes[self.next as usize].next_sibling;
                }
                self.value = Some(Value::Run { first, count });
                name
            }
        };
        seed.deserialize(BorrowedStrDeserializer::new(self.de.names.get(name)))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(Value::Run { first, count: 1 }) => seed.deserialize(self.de.at(first)),
            Some(Value::Group(members)) if members.len() == 1 => seed.deserialize(self.de.at(members[0])),
            Some(v) => seed.deserialize(SeqDe {
                de: self.de,
                items: v,
                pos: 0,
            }),
            None => Err(de::Error::custom("a value without its key")),
        }
    }
}

/// Repeated elements as a sequence.
struct SeqDe<'a> {
    de: NodeDe<'a>,
    items: Value,
    pos: usize,
}

impl<'de> SeqAccess<'de> for SeqDe<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        let idx = match &mut self.items {
            Value::Run { first, count } => {
                if self.pos >= *count {
                    return Ok(None);
                }
                let idx = *first;
                *first = self.de.tree.nodes[idx as usize].next_sibling;
                idx
            }
            Value::Group(members) => match members.get(self.pos) {
                None => return Ok(None),
                Some(&i) => i,
            },
        };
        self.pos += 1;
        seed.deserialize(self.de.at(idx)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(match &self.items {
            Value::Run { count, .. } => count - self.pos,
            Value::Group(m) => m.len() - self.pos,
        })
    }
}

impl<'de> Deserializer<'de> for SeqDe<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(self)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(build: impl FnOnce(&mut Tree, &mut Names)) -> (Tree, Names) {
        let mut t = Tree::default();
        let mut n = Names::default();
        build(&mut t, &mut n);
        (t, n)
    }

    #[test]
    fn elements_become_the_same_value_as_before() {
        // <p><id>1</id><prices><a>1</a></prices><x/><prices><a>2</a></prices><name xsi:nil="true"/></p>
        let (t, n) = tree(|t, n| {
            let ids: Vec<u32> = ["p", "id", "prices", "a", "x", "name"]
                .iter()
                .map(|s| n.intern(s))
                .collect();
            t.start(ids[0], false);
            t.start(ids[1], false);
            t.text("1");
            t.end();
            t.start(ids[2], false);
            t.start(ids[3], false);
            t.text("1");
            t.end();
            t.end();
            t.start(ids[4], false);
            t.end();
            t.start(ids[2], false);
            t.start(ids[3], false);
            t.text("2");
            t.end();
            t.end();
            t.start(ids[5], true);
            t.end();
            t.end();
        });
        let v = serde_json::Value::deserialize(NodeDe::root(&t, &n)).expect("deserialises");
        assert_eq!(
            v,
            serde_json::json!({"id": "1", "prices": [{"a": "1"}, {"a": "2"}], "x": null, "name": null})
        );
    }

    use serde::Deserialize;
}
