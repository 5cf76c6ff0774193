//! The report's graph, laid out for SVG: no Graphviz at run time, and the same picture on every
//! run.
//!
//! - **Ranks**: flows read left to right. Each node's column is its longest path from a node
//!   nothing flows into (cycles are broken by ignoring the back edges of a depth-first search,
//!   self loops do not count), and a node that only sends is pulled right, next to the first
//!   node it feeds.
//! - **Bands**: each namespace is a horizontal band; nodes of no namespace that only send (pods of
//!   other namespaces chosen by labels, say) get a band on top, the other ones (`dns`, addresses)
//!   a band at the bottom. Namespaces are ordered so that those with many edges between them are
//!   neighbours, starting from the one that sends most to the others.
//! - **Order within a band column**: twice, by the mean position of each node's neighbours.
//! - **Edges** leave a node by its right pill (egress) and enter by the left pill (ingress),
//!   spread along the pill in the order of the other ends; labels sit on their curve, moved along
//!   it until they overlap no node and no other label where possible.

use serde::Serialize;

use super::{Token, node_anchor, rule_anchor};
use crate::graph::{self, DoorView, Graph, NodeKind};

#[derive(Debug, Serialize)]
pub(super) struct SvgGraph {
    width: u32,
    height: u32,
    /// Below this width the page scrolls the graph instead of shrinking it further.
    min_width: u32,
    bands: Vec<SvgBand>,
    nodes: Vec<SvgNode>,
    edges: Vec<SvgEdge>,
    empty: bool,
}

#[derive(Debug, Serialize)]
struct SvgBand {
    x: String,
    y: String,
    /// Where the title goes.
    tx: String,
    ty: String,
    width: String,
    height: String,
    title: String,
    namespace: bool,
}

#[derive(Debug, Serialize)]
struct SvgNode {
    href: String,
    x: String,
    y: String,
    width: String,
    height: String,
    /// x of the text, and the baselines of its three lines.
    tx: String,
    y1: String,
    y2: String,
    y3: String,
    /// The door pills: top, height, and the x of the left and right ones.
    door_y: String,
    door_h: String,
    left: String,
    right: String,
    class: String,
    label: String,
    detail: String,
    /// The doors line, in coloured pieces.
    doors: Vec<Token>,
    title: String,
    /// Classes of the left (ingress) and right (egress) pills; empty: no pill.
    ingress: &'static str,
    egress: &'static str,
}

#[derive(Debug, Serialize)]
struct SvgEdge {
    d: String,
    href: String,
    class: &'static str,
    label: String,
    lx: String,
    ly: String,
    title: String,
}

const NODE_H: f64 = 58.0;
const NODE_GAP: f64 = 18.0;
const RANK_GAP: f64 = 92.0;
const MIN_NODE_W: f64 = 120.0;
const MAX_NODE_W: f64 = 184.0;
const BAND_PAD: f64 = 14.0;
const BAND_TITLE: f64 = 26.0;
const BAND_GAP: f64 = 18.0;
const MARGIN: f64 = 16.0;
const LABEL_SIZE: f64 = 11.0;

fn px(v: f64) -> String {
    format!("{v:.1}")
}

/// Rough widths of sans-serif text (the page uses the system font), to size boxes without one.
fn text_width(s: &str, size: f64) -> f64 {
    s.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '|' | '!' | '\'' | ' ' | 'f' | 't' | 'r' | '/'
            | '(' | ')' | '[' | ']' | '{' | '}' => 0.33,
            'm' | 'w' | 'M' | 'W' | '@' => 0.85,
            c if c.is_ascii_uppercase() || c.is_ascii_digit() => 0.62,
            _ => 0.55,
        })
        .sum::<f64>()
        * size
}

/// Monospace text: every character is 0.6 em wide (DejaVu Sans Mono, Menlo, Consolas alike).
fn mono_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * 0.6 * size
}

/// `s`, cut with an ellipsis to fit `max_width` as measured by `width`.
fn clip(s: &str, max_width: f64, size: f64, width: fn(&str, f64) -> f64) -> String {
    if width(s, size) <= max_width {
        return s.to_owned();
    }
    let mut out = String::new();
    for c in s.chars() {
        out.push(c);
        if width(&out, size) + width("…", size) > max_width {
            out.pop();
            break;
        }
    }
    out.push('…');
    out
}

/// Column of each node: see the module documentation.
fn ranks(graph: &Graph) -> Vec<usize> {
    let n = graph.nodes.len();
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    for e in &graph.edges {
        if e.from != e.to && !succ[e.from].contains(&e.to) {
            succ[e.from].push(e.to);
        }
    }
    // Depth-first, iteratively, keeping the edges that are not back edges.
    let mut state = vec![0u8; n]; // 0: not seen, 1: on the stack, 2: done
    let mut forward: Vec<Vec<usize>> = vec![Vec::new(); n];
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if *next < succ[v].len() {
                let w = succ[v][*next];
                *next += 1;
                match state[w] {
                    0 => {
                        forward[v].push(w);
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    2 => forward[v].push(w),
                    _ => {} // a back edge: ignored for ranking
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    // Longest path over what is left (a DAG), in Kahn's order.
    let mut indegree = vec![0usize; n];
    for f in &forward {
        for &w in f {
            indegree[w] += 1;
        }
    }
    let mut rank = vec![0usize; n];
    let mut queue: std::collections::VecDeque<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    while let Some(v) = queue.pop_front() {
        for &w in &forward[v] {
            rank[w] = rank[w].max(rank[v] + 1);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                queue.push_back(w);
            }
        }
    }
    for v in 0..n {
        let has_in = graph.edges.iter().any(|e| e.to == v && e.from != v);
        if !has_in
            && let Some(m) = forward[v].iter().map(|&w| rank[w]).min()
            && m > 0
        {
            rank[v] = m - 1;
        }
    }
    rank
}

/// A band of the picture: a namespace, or nodes of none.
struct Band {
    title: String,
    namespace: bool,
    members: Vec<usize>,
}

/// Namespaces (in an order that keeps connected ones together), with the nodes of no namespace
/// that only send on top and the others at the bottom.
fn bands(graph: &Graph) -> Vec<Band> {
    let n = graph.nodes.len();
    let has_in: Vec<bool> = (0..n).map(|v| graph.edges.iter().any(|e| e.to == v && e.from != v)).collect();
    let has_out: Vec<bool> = (0..n).map(|v| graph.edges.iter().any(|e| e.from == v && e.to != v)).collect();
    let namespaced: Vec<Band> = graph
        .namespaces
        .iter()
        .map(|ns| Band {
            title: format!("namespace {ns}"),
            namespace: true,
            members: graph.nodes_in(Some(ns)).collect(),
        })
        .collect();
    // Which band each namespaced node is in, to weigh the bands' connections.
    let mut band_of = vec![usize::MAX; n];
    for (b, band) in namespaced.iter().enumerate() {
        for &v in &band.members {
            band_of[v] = b;
        }
    }
    let k = namespaced.len();
    let mut weight = vec![vec![0usize; k]; k];
    let mut score = vec![0isize; k];
    let mut receives = vec![false; k];
    for e in &graph.edges {
        let (a, b) = (band_of[e.from], band_of[e.to]);
        if a != usize::MAX && b != usize::MAX && a != b {
            weight[a][b] += 1;
            weight[b][a] += 1;
            score[a] += 1;
            score[b] -= 1;
            receives[b] = true;
        }
    }
    let mut order: Vec<usize> = Vec::with_capacity(k);
    let mut placed = vec![false; k];
    while order.len() < k {
        let next = (0..k)
            .filter(|&b| !placed[b])
            .max_by_key(|&b| {
                let to_last = order.last().map_or(0, |&l| weight[l][b]);
                let to_any: usize = order.iter().map(|&p| weight[p][b]).sum();
                // Highest first: connected to the last one placed, to any placed, receiving from no
                // other namespace (where flows start), sending most; on a tie, name order.
                (to_last, to_any, !receives[b], score[b], std::cmp::Reverse(b))
            })
            .expect("an unplaced band is left while fewer than k are placed");
        placed[next] = true;
        order.push(next);
    }
    let mut slots: Vec<Option<Band>> = namespaced.into_iter().map(Some).collect();
    let mut out = Vec::new();
    let outside: Vec<usize> = graph.nodes_in(None).collect();
    let (senders, others): (Vec<usize>, Vec<usize>) =
        outside.into_iter().partition(|&v| has_out[v] && !has_in[v]);
    if !senders.is_empty() {
        out.push(Band {
            title: "from outside these namespaces".to_owned(),
            namespace: false,
            members: senders,
        });
    }
    out.extend(order.into_iter().filter_map(|b| slots[b].take()));
    if !others.is_empty() {
        out.push(Band { title: "outside these namespaces".to_owned(), namespace: false, members: others });
    }
    out
}

fn bezier_at(p: [(f64, f64); 4], t: f64) -> (f64, f64) {
    let u = 1.0 - t;
    let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
    (a * p[0].0 + b * p[1].0 + c * p[2].0 + d * p[3].0, a * p[0].1 + b * p[1].1 + c * p[2].1 + d * p[3].1)
}

/// An axis-aligned box: x, y, width, height.
type Rect = (f64, f64, f64, f64);

fn overlaps(a: Rect, b: Rect) -> bool {
    a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
}

pub(super) fn layout(graph: &Graph) -> SvgGraph {
    let n = graph.nodes.len();
    if n == 0 {
        return SvgGraph {
            width: 420,
            height: 60,
            min_width: 420,
            bands: Vec::new(),
            nodes: Vec::new(),
            edges: Vec::new(),
            empty: true,
        };
    }
    let rank = ranks(graph);
    let columns = rank.iter().max().map_or(1, |m| m + 1);
    let lines: Vec<(String, String, Option<String>)> = graph
        .nodes
        .iter()
        .map(|node| {
            let detail = if node.detail == node.label { String::new() } else { node.detail.clone() };
            let doors = if node.isolated { Some("isolated".to_owned()) } else { graph::doors_line(node) };
            (node.label.clone(), detail, doors)
        })
        .collect();
    let natural: Vec<f64> = lines
        .iter()
        .map(|(l, d, doors)| {
            text_width(l, 13.5)
                .max(mono_width(d, 10.5))
                .max(doors.as_deref().map_or(0.0, |s| text_width(s, 10.5)))
                + 34.0
        })
        .collect();
    let mut col_width = vec![MIN_NODE_W; columns];
    for v in 0..n {
        col_width[rank[v]] = col_width[rank[v]].max(natural[v].min(MAX_NODE_W));
    }
    let mut col_x = vec![0.0; columns];
    let mut x = MARGIN + BAND_PAD + 6.0;
    for c in 0..columns {
        col_x[c] = x;
        x += col_width[c] + RANK_GAP;
    }
    let width = x - RANK_GAP + BAND_PAD + 6.0 + MARGIN;
    let bands = bands(graph);
    // Order nodes within each (band, column) by the mean position of their neighbours.
    let mut slot: Vec<f64> = (0..n).map(|v| v as f64).collect();
    let mut cells: Vec<Vec<Vec<usize>>> = bands
        .iter()
        .map(|band| {
            let mut by_col = vec![Vec::new(); columns];
            for &v in &band.members {
                by_col[rank[v]].push(v);
            }
            by_col
        })
        .collect();
    for _ in 0..2 {
        let mut order = 0.0;
        for band in &cells {
            let tallest = band.iter().map(Vec::len).max().unwrap_or(0);
            for row in 0..tallest {
                for col in band {
                    if let Some(&v) = col.get(row) {
                        slot[v] = order;
                    }
                }
                order += 1.0;
            }
        }
        for band in &mut cells {
            for col in band.iter_mut() {
                let key = |v: usize| {
                    let (sum, count) = graph
                        .edges
                        .iter()
                        .filter(|e| e.from != e.to && (e.from == v || e.to == v))
                        .map(|e| if e.from == v { slot[e.to] } else { slot[e.from] })
                        .fold((0.0, 0.0), |(s, c), y| (s + y, c + 1.0));
                    if count == 0.0 { slot[v] } else { sum / count }
                };
                let mut keyed: Vec<(f64, usize)> = col.iter().map(|&v| (key(v), v)).collect();
                keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                *col = keyed.into_iter().map(|(_, v)| v).collect();
            }
        }
    }
    // Positions: x, y, width of each node.
    let mut pos = vec![(0.0f64, 0.0f64, 0.0f64); n];
    let mut svg_bands = Vec::new();
    let mut y = MARGIN;
    for (band, band_cells) in bands.iter().zip(&cells) {
        let tallest = band_cells.iter().map(Vec::len).max().unwrap_or(0) as f64;
        let inner = tallest * NODE_H + (tallest - 1.0).max(0.0) * NODE_GAP;
        let height = BAND_TITLE + inner + 2.0 * BAND_PAD;
        for (c, col) in band_cells.iter().enumerate() {
            let count = col.len() as f64;
            let used = count * NODE_H + (count - 1.0).max(0.0) * NODE_GAP;
            let mut ny = y + BAND_TITLE + BAND_PAD + (inner - used) / 2.0;
            for &v in col {
                pos[v] = (col_x[c], ny, col_width[c]);
                ny += NODE_H + NODE_GAP;
            }
        }
        svg_bands.push(SvgBand {
            x: px(MARGIN),
            y: px(y),
            tx: px(MARGIN + 12.0),
            ty: px(y + 18.0),
            width: px(width - 2.0 * MARGIN),
            height: px(height),
            title: band.title.clone(),
            namespace: band.namespace,
        });
        y += height + BAND_GAP;
    }
    let height = y - BAND_GAP + MARGIN;
    let edges = edges(graph, &pos);
    let nodes =
        graph.nodes.iter().enumerate().map(|(v, node)| svg_node(v, node, pos[v], &lines[v])).collect();
    SvgGraph {
        width: width.ceil() as u32,
        height: height.ceil() as u32,
        min_width: (width * 0.7).ceil() as u32,
        bands: svg_bands,
        nodes,
        edges,
        empty: false,
    }
}

fn edges(graph: &Graph, pos: &[(f64, f64, f64)]) -> Vec<SvgEdge> {
    let n = graph.nodes.len();
    // Where edges attach: spread along the pills, in the order of the other end's height.
    let mut outs: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n];
    let mut ins: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n];
    for (i, e) in graph.edges.iter().enumerate() {
        outs[e.from].push((pos[e.to].1, i));
        ins[e.to].push((pos[e.from].1, i));
    }
    let mut start_y = vec![0.0; graph.edges.len()];
    let mut end_y = vec![0.0; graph.edges.len()];
    for v in 0..n {
        for (list, target) in [(&mut outs[v], &mut start_y), (&mut ins[v], &mut end_y)] {
            list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let k = list.len() as f64;
            for (j, &(_, e)) in list.iter().enumerate() {
                target[e] = if k <= 1.0 {
                    pos[v].1 + NODE_H / 2.0
                } else {
                    pos[v].1 + 14.0 + (NODE_H - 28.0) * (j as f64) / (k - 1.0)
                };
            }
        }
    }
    let out_degree: Vec<usize> = (0..n).map(|v| outs[v].len()).collect();
    let in_degree: Vec<usize> = (0..n).map(|v| ins[v].len()).collect();
    // Labels avoid nodes and each other.
    let mut taken: Vec<Rect> = pos.iter().map(|&(x, y, w)| (x - 4.0, y, w + 8.0, NODE_H)).collect();
    graph
        .edges
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let p0 = (pos[e.from].0 + pos[e.from].2 + 3.5, start_y[i]);
            let p3 = (pos[e.to].0 - 5.0, end_y[i]);
            let (p1, p2) = if e.from == e.to {
                let below = pos[e.from].1 + NODE_H + 36.0;
                ((p0.0 + 40.0, below), (pos[e.from].0 - 40.0, below))
            } else if p3.0 > p0.0 + 10.0 {
                let dx = (p3.0 - p0.0) / 2.0;
                ((p0.0 + dx, p0.1), (p3.0 - dx, p3.1))
            } else {
                // Backwards: swing out to the right and come back in from the left, below.
                ((p0.0 + 120.0, p0.1 + 90.0), (p3.0 - 120.0, p3.1 + 90.0))
            };
            let curve = [p0, p1, p2, p3];
            let label = clip(&graph.edge_label(e), 150.0, LABEL_SIZE, mono_width);
            let label_w = mono_width(&label, LABEL_SIZE) + 6.0;
            // Near the end that fans out less, so the labels of a fan do not pile up.
            let candidates: &[f64] = if e.from == e.to {
                &[0.5]
            } else if out_degree[e.from] > in_degree[e.to] {
                &[0.72, 0.62, 0.8, 0.5, 0.86, 0.4, 0.3, 0.2]
            } else if in_degree[e.to] > out_degree[e.from] {
                &[0.28, 0.38, 0.2, 0.5, 0.14, 0.6, 0.7, 0.8]
            } else {
                &[0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78, 0.15, 0.85]
            };
            // Labels sit just above their curve, where they read as the line's caption.
            let boxed = |t: f64| {
                let (cx, cy) = bezier_at(curve, t);
                ((cx, cy), (cx - label_w / 2.0, cy - 16.0, label_w, 13.0))
            };
            let ((lx, ly), rect) = candidates
                .iter()
                .map(|&t| boxed(t))
                .find(|(_, r)| !taken.iter().any(|o| overlaps(*r, *o)))
                .unwrap_or_else(|| boxed(candidates[0]));
            taken.push(rect);
            let rules =
                if e.rules.is_empty() { String::new() } else { format!(" (rule {})", e.rules.join(", ")) };
            SvgEdge {
                d: format!(
                    "M {} {} C {} {}, {} {}, {} {}",
                    px(p0.0),
                    px(p0.1),
                    px(p1.0),
                    px(p1.1),
                    px(p2.0),
                    px(p2.1),
                    px(p3.0),
                    px(p3.1)
                ),
                href: e.rules.first().map(|r| format!("#{}", rule_anchor(r))).unwrap_or_default(),
                class: if e.partial { "edge partial" } else { "edge" },
                label,
                lx: px(lx),
                ly: px(ly - 5.0),
                title: format!(
                    "{} → {}: {}{rules}",
                    graph.nodes[e.from].label,
                    graph.nodes[e.to].label,
                    graph.edge_label(e)
                ),
            }
        })
        .collect()
}

fn door_class(d: &DoorView) -> &'static str {
    match d {
        DoorView::Guarded { .. } => "guarded",
        DoorView::Open => "open",
        DoorView::Partly => "partly",
        DoorView::Unknown | DoorView::NotApplicable => "",
    }
}

fn svg_node(
    v: usize,
    node: &graph::Node,
    (x, y, w): (f64, f64, f64),
    (label, detail, doors): &(String, String, Option<String>),
) -> SvgNode {
    let mut door_tokens = Vec::new();
    if node.isolated {
        door_tokens.push(Token { class: "isolated", text: "isolated: no flows in or out".to_owned() });
    } else if doors.is_some() {
        for (word, view) in [("in", &node.ingress), ("out", &node.egress)] {
            if !view.word().is_empty() {
                if !door_tokens.is_empty() {
                    door_tokens.push(Token { class: "sep", text: " · ".to_owned() });
                }
                door_tokens.push(Token { class: door_class(view), text: format!("{word} {}", view.word()) });
            }
        }
    }
    let kind = match node.kind {
        NodeKind::Workload => "workload",
        NodeKind::Namespaces => "namespaces",
        NodeKind::Dns => "dns",
        NodeKind::External => "external",
        NodeKind::Anywhere => "anywhere",
    };
    let mut class = format!("node {kind}");
    if node.isolated {
        class.push_str(" isolated");
    }
    let has_doors = super::has_card(node);
    SvgNode {
        href: if has_doors { format!("#{}", node_anchor(v)) } else { String::new() },
        x: px(x),
        y: px(y),
        width: px(w),
        height: px(NODE_H),
        tx: px(x + 14.0),
        y1: px(y + if detail.is_empty() { 25.0 } else { 21.0 }),
        y2: px(y + 36.5),
        y3: px(y + if detail.is_empty() { 43.0 } else { 51.0 }),
        door_y: px(y + 9.0),
        door_h: px(NODE_H - 18.0),
        left: px(x - 3.5),
        right: px(x + w - 3.5),
        class,
        label: clip(label, w - 28.0, 13.5, text_width),
        detail: clip(detail, w - 28.0, 10.5, mono_width),
        doors: door_tokens,
        title: [label.as_str(), detail.as_str(), doors.as_deref().unwrap_or("")]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n"),
        ingress: if node.isolated { "isolated" } else { door_class(&node.ingress) },
        egress: if node.isolated { "isolated" } else { door_class(&node.egress) },
    }
}
