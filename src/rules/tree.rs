//! R1 (the tree), R3 (visible scope) and R7 (time zones), computed once per document.

use std::collections::HashMap;

use jiff::tz::TimeZone;

use crate::document::{self, Mode, NodeKind};
use crate::problem::Problem;

/// Index of a node in [`Tree::nodes`].
pub type NodeIdx = usize;

#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    pub name: String,
    pub parent: Option<NodeIdx>,
    /// R1: the mode of the nearest company ancestor-or-self that sets one, else managed.
    pub mode: Mode,
    /// R1: the highest company ancestor-or-self; `None` for a partner.
    pub top_company: Option<NodeIdx>,
    /// R7: the zone of the nearest ancestor-or-self that sets one, else the box's zone.
    pub zone: TimeZone,
    /// R3: the nodes whose objects this node sees, nearest first (product level not included).
    pub scope: Vec<NodeIdx>,
}

#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub nodes: Vec<Node>,
    by_id: HashMap<String, NodeIdx>,
}

impl Tree {
    /// Builds the tree, or pushes every problem and returns `None`: a bad tree makes the whole
    /// document invalid (R1).
    pub fn build(raw: &[document::Node], box_zone: &TimeZone, problems: &mut Vec<Problem>) -> Option<Tree> {
        let before = problems.len();
        let mut by_id = HashMap::with_capacity(raw.len());
        for (i, n) in raw.iter().enumerate() {
            if by_id.insert(n.id.clone(), i).is_some() {
                problems.push(Problem::new(
                    "duplicate_id",
                    format!("tree[{i}].id"),
                    format!("node id {:?} is used more than once", n.id),
                ));
            }
        }
        // After a duplicate, the map points at the last one; point it at the first.
        for (i, n) in raw.iter().enumerate().rev() {
            by_id.insert(n.id.clone(), i);
        }

        let mut parents = vec![None; raw.len()];
        let mut zones = vec![None; raw.len()];
        for (i, n) in raw.iter().enumerate() {
            parents[i] = check_parent(raw, &by_id, i, problems);
            if n.mode.is_some() && n.kind != NodeKind::Company {
                problems.push(Problem::new(
                    "invalid_value",
                    format!("tree[{i}].mode"),
                    format!("only a company has a mode; {:?} is a {}", n.id, n.kind.as_str()),
                ));
            }
            if let Some(name) = &n.timezone {
                zones[i] = zone_named(name, &format!("tree[{i}].timezone"), problems);
            }
        }
        // Cycles are found from the parent links alone, so they are reported with the rest.
        let order = parents_first(raw, &parents, problems);
        if problems.len() > before {
            return None;
        }
        let order = order?;

        let mut nodes: Vec<Option<Node>> = vec![None; raw.len()];
        for i in order {
            let n = &raw[i];
            let parent = parents[i].and_then(|p| nodes[p].as_ref());
            let mode = match (n.kind, n.mode) {
                (NodeKind::Company, Some(m)) => m,
                _ => parent.map_or(Mode::Managed, |p| p.mode),
            };
            let top_company = match n.kind {
                NodeKind::Partner => None,
                NodeKind::Company if parent.is_none_or(|p| p.kind == NodeKind::Partner) => Some(i),
                _ => parent.and_then(|p| p.top_company),
            };
            let zone = zones[i]
                .clone()
                .or_else(|| parent.map(|p| p.zone.clone()))
                .unwrap_or_else(|| box_zone.clone());
            nodes[i] = Some(Node {
                id: n.id.clone(),
                kind: n.kind,
                name: n.name.clone(),
                parent: parents[i],
                mode,
                top_company,
                zone,
                scope: Vec::new(),
            });
        }
        let mut nodes: Vec<Node> = nodes.into_iter().flatten().collect();
        for i in 0..nodes.len() {
            nodes[i].scope = visible_scope(&nodes, i);
        }
        Some(Tree { nodes, by_id })
    }

    pub fn get(&self, id: &str) -> Option<NodeIdx> {
        self.by_id.get(id).copied()
    }

    pub fn node(&self, i: NodeIdx) -> &Node {
        &self.nodes[i]
    }

    pub fn id(&self, i: NodeIdx) -> &str {
        &self.nodes[i].id
    }

    /// Whether `a` is `d` or one of its ancestors.
    pub fn is_ancestor_or_self(&self, a: NodeIdx, d: NodeIdx) -> bool {
        let mut cur = Some(d);
        while let Some(c) = cur {
            if c == a {
                return true;
            }
            cur = self.nodes[c].parent;
        }
        false
    }

    /// R3: whether an object owned by `owner` (`None`: a product object) is visible at `d`.
    pub fn sees(&self, d: NodeIdx, owner: Option<NodeIdx>) -> bool {
        owner.is_none_or(|o| self.nodes[d].scope.contains(&o))
    }

    /// The top company of a node and its zone (R18 counts days in it); `None` for a partner.
    pub fn company_of(&self, d: NodeIdx) -> Option<(&str, &TimeZone)> {
        self.nodes[d].top_company.map(|c| (self.id(c), &self.nodes[c].zone))
    }

    /// The top companies, in document order.
    pub fn companies(&self) -> impl Iterator<Item = NodeIdx> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].top_company == Some(i))
    }

    /// The top company's id of a node, as records carry it (R12).
    pub fn company_id(&self, d: NodeIdx) -> Option<&str> {
        self.nodes[d].top_company.map(|c| self.id(c))
    }
}

fn check_parent(
    raw: &[document::Node],
    by_id: &HashMap<String, NodeIdx>,
    i: NodeIdx,
    problems: &mut Vec<Problem>,
) -> Option<NodeIdx> {
    let n = &raw[i];
    let at = format!("tree[{i}].parent");
    let Some(parent_id) = &n.parent else {
        if n.kind == NodeKind::Site {
            problems.push(Problem::new(
                "wrong_parent_kind",
                at,
                format!("site {:?} has no parent; a site's parent is a company", n.id),
            ));
        }
        return None;
    };
    let Some(&p) = by_id.get(parent_id) else {
        problems.push(Problem::new(
            "unknown_parent",
            at,
            format!("unknown node {parent_id:?}"),
        ));
        return None;
    };
    let pk = raw[p].kind;
    let allowed = match n.kind {
        NodeKind::Partner => pk == NodeKind::Partner,
        NodeKind::Company => matches!(pk, NodeKind::Partner | NodeKind::Company),
        NodeKind::Site => pk == NodeKind::Company,
    };
    if !allowed {
        let rule = match n.kind {
            NodeKind::Partner => "a partner's parent is a partner",
            NodeKind::Company => "a company's parent is a partner or a company",
            NodeKind::Site => "a site's parent is a company",
        };
        problems.push(Problem::new(
            "wrong_parent_kind",
            at,
            format!(
                "{} {:?} cannot have the {} {parent_id:?} as parent; {rule}",
                n.kind.as_str(),
                n.id,
                pk.as_str()
            ),
        ));
    }
    Some(p)
}

/// Orders nodes so that every parent comes before its children, reporting every cycle.
fn parents_first(
    raw: &[document::Node],
    parents: &[Option<NodeIdx>],
    problems: &mut Vec<Problem>,
) -> Option<Vec<NodeIdx>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Walking,
        Done,
    }
    let mut mark = vec![Mark::New; raw.len()];
    let mut order = Vec::with_capacity(raw.len());
    let mut cyclic = false;
    for start in 0..raw.len() {
        let mut path = Vec::new();
        let mut cur = Some(start);
        while let Some(c) = cur {
            match mark[c] {
                Mark::Done => break,
                Mark::Walking => {
                    let from = path.iter().position(|&p| p == c).unwrap_or(0);
                    let names: Vec<String> = path[from..]
                        .iter()
                        .chain([&c])
                        .map(|&p| format!("{:?}", raw[p].id))
                        .collect();
                    problems.push(Problem::new(
                        "tree_cycle",
                        format!("tree[{c}].parent"),
                        format!("the parents form a cycle: {}", names.join(" → ")),
                    ));
                    cyclic = true;
                    break;
                }
                Mark::New => {
                    mark[c] = Mark::Walking;
                    path.push(c);
                    cur = parents[c];
                }
            }
        }
        // Ancestors were pushed after descendants: record them root first.
        for &p in path.iter().rev() {
            mark[p] = Mark::Done;
            order.push(p);
        }
    }
    (!cyclic).then_some(order)
}

fn visible_scope(nodes: &[Node], d: NodeIdx) -> Vec<NodeIdx> {
    let own = &nodes[d];
    let partners_visible = own.kind == NodeKind::Partner || own.mode == Mode::Managed;
    let mut chain = Vec::new();
    let mut cur = Some(d);
    while let Some(c) = cur {
        if nodes[c].kind == NodeKind::Partner && !partners_visible {
            break;
        }
        chain.push(c);
        cur = nodes[c].parent;
    }
    chain
}

/// An IANA zone by name, from the system database when present, else the bundled one.
pub fn zone_named(name: &str, at: &str, problems: &mut Vec<Problem>) -> Option<TimeZone> {
    match TimeZone::get(name) {
        Ok(tz) if !tz.is_unknown() => Some(tz),
        _ => {
            problems.push(Problem::new(
                "unknown_timezone",
                at,
                format!("unknown time zone {name:?}: expected an IANA name such as \"Europe/Paris\""),
            ));
            None
        }
    }
}
