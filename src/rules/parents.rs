//! R14: parent devices. A parent is usable when this box accepts it and it has a host check;
//! others are set aside with a device warning. Links that close a cycle are ignored with a
//! document warning, so that "unreachable" always ends at a device with no usable parent.

use std::collections::HashMap;

use super::plan::DevicePlan;
use crate::document;

/// Fills each accepted device's usable `parents`; returns the document warnings (cycles).
pub fn resolve(raw: &[document::Device], devices: &mut [DevicePlan], ids: &HashMap<&str, usize>) -> Vec<String> {
    let mut links: Vec<Vec<usize>> = vec![Vec::new(); devices.len()];
    for (d, raw_device) in raw.iter().enumerate() {
        if devices[d].outcome.is_err() {
            continue;
        }
        let mut warnings = Vec::new();
        for id in &raw_device.parents {
            match ids.get(id.as_str()) {
                None => warnings.push(format!("unknown_parent:{id}")),
                Some(&p) => match &devices[p].outcome {
                    Ok(parent) if parent.host_check.is_some() => {
                        if !links[d].contains(&p) {
                            links[d].push(p);
                        }
                    }
                    _ => warnings.push(format!("parent_not_polled:{id}")),
                },
            }
        }
        devices[d].warnings.extend(warnings);
    }
    let cycles = break_cycles(&mut links, devices);
    for (d, usable) in links.into_iter().enumerate() {
        if let Ok(device) = &mut devices[d].outcome {
            device.parents = usable;
        }
    }
    cycles
}

/// Removes each link that closes a cycle (a depth-first search from every device, in document
/// order); returns a warning naming each cycle's devices.
fn break_cycles(links: &mut [Vec<usize>], devices: &[DevicePlan]) -> Vec<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; links.len()];
    let mut warnings = Vec::new();
    for root in 0..links.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // (device, index of the next link to follow); the stack is the current path.
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::OnPath;
        while let Some(&(d, next)) = stack.last() {
            if next >= links[d].len() {
                mark[d] = Mark::Done;
                stack.pop();
                continue;
            }
            let p = links[d][next];
            match mark[p] {
                Mark::New => {
                    advance(&mut stack);
                    mark[p] = Mark::OnPath;
                    stack.push((p, 0));
                }
                Mark::OnPath => {
                    let from = stack.iter().position(|(s, _)| *s == p).unwrap_or(0);
                    let cycle: Vec<&str> = stack[from..]
                        .iter()
                        .map(|(s, _)| devices[*s].id.as_str())
                        .chain(std::iter::once(devices[p].id.as_str()))
                        .collect();
                    warnings.push(format!("parent_cycle:{}", cycle.join(",")));
                    links[d].remove(next);
                }
                Mark::Done => advance(&mut stack),
            }
        }
    }
    warnings
}

/// Moves the top of the walk to its device's next link.
fn advance(stack: &mut [(usize, usize)]) {
    if let Some((_, next)) = stack.last_mut() {
        *next += 1;
    }
}
