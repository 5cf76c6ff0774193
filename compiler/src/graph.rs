//! `netc graph`: who may talk to whom, as a graph (DOT or Mermaid) and a table.
//!
//! Two views, one shape ([`Graph`]):
//!
//! - [`Graph::from_ir`], the intent: a node per workload the source names (grouped by namespace)
//!   and per other peer its rules name (pods of other namespaces, address blocks, `anywhere`,
//!   `dns`); an edge per rule and peer, labelled with the rule's ports in netc notation (an arrow
//!   whose both ends are guarded gives one edge carrying both rule ids). Each workload shows its
//!   two doors: guarded when a policy that selects all of its pods guards the door (its own, or
//!   a wider one such as `default deny`). Workloads whose both doors are guarded and that no edge
//!   touches are marked isolated.
//! - [`Graph::from_cluster`], the effect on a cluster: pods grouped by the workload that selects
//!   them (their named workload in the IR, else their `app` label, else their name), plus the
//!   inventory's external addresses; edges from the all-pairs [`Matrix`]. Pairs whose doors are
//!   all open (nothing of the IR applies) are left out of the edges, because with no policy
//!   everything talks to everything; they stay in the table.
//!
//! [`Graph::cells`] is the connectivity table over the nodes, row = sender, column = receiver.
//! From the IR it is worked out symbolically, for a pod that carries exactly what the workload's
//! selector says (an approximation, stated in the report); from a cluster it is exact.
//!
//! Everything is sorted: the same input gives byte-identical output.
//!
//! ```
//! let out = netc::compile(&[netc::SourceFile::new("a.np", "frontend -> backend:8080\nhermit isolated\n")]);
//! let graph = netc::graph::Graph::from_ir(&out.ir.expect("compiles"), &Default::default());
//! let dot = graph.to_dot();
//! assert!(dot.contains(r#""default/frontend" -> "default/backend" [label="8080""#));
//! assert!(graph.nodes.iter().any(|n| n.label == "hermit" && n.isolated));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use ipnet::IpNet;
use netc_ir::eval::{DoorVerdict, Endpoint, Evaluator, Flow};
use netc_ir::{
    Direction, Inventory, Ir, LabelSelector, Operator, Peer, Policy, Port, PortValue, Protocol, Span,
};

use crate::analysis::matrix::{EndpointKind, Matrix, Probe};
use crate::prove::pods::PodSet;

/// The namespace label every namespace carries, and the DNS peer netc writes for `dns`.
const DNS_NAMESPACE: &str = "kube-system";

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    /// Pods of one namespace chosen by labels: a named workload, `*` (all pods), an inline
    /// selector, or (from a cluster) a group of pods.
    Workload,
    /// Pods in namespaces chosen by labels, or in every namespace (`{team=x}/*`, `*/{app=y}`).
    Namespaces,
    /// The cluster DNS (`dns`).
    Dns,
    /// Address blocks (an `external`, CIDRs in an arrow) or an address of the inventory.
    External,
    /// Any address at all (a rule without peers).
    Anywhere,
}

/// One door of a node, as far as the graph can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorView {
    /// Addresses have no door of ours.
    NotApplicable,
    /// Pods of namespaces the IR does not pin down: their doors depend on policies elsewhere.
    Unknown,
    /// Nothing guards it: anything passes.
    Open,
    /// Some of the node's pods are guarded, others are not (a narrower policy, or in a cluster
    /// group pods that differ).
    Partly,
    /// Every pod of the node is guarded: only the rules pass.
    Guarded {
        /// The policies (indices into [`Ir::policies`]) that guard it.
        policies: Vec<usize>,
        /// The statements that guard it, sorted.
        statements: Vec<Span>,
        /// The ids of the rules through this door, in IR order.
        rules: Vec<String>,
    },
}

impl DoorView {
    /// `guarded`, `open`, `partly guarded`, or an empty string when the node has no such door.
    #[must_use]
    pub fn word(&self) -> &'static str {
        match self {
            DoorView::NotApplicable | DoorView::Unknown => "",
            DoorView::Open => "open",
            DoorView::Partly => "partly guarded",
            DoorView::Guarded { .. } => "guarded",
        }
    }

    /// Whether every pod behind the door is guarded.
    #[must_use]
    pub fn is_guarded(&self) -> bool {
        matches!(self, DoorView::Guarded { .. })
    }
}

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Stable and unique in the graph (`shop/api`, `ext:203.0.113.0/24`, `anywhere`).
    pub id: String,
    /// What it stands for.
    pub kind: NodeKind,
    /// The namespace it is drawn in; `None` for everything that is not pods of one namespace.
    pub namespace: Option<String>,
    /// Short name: `api`, `all pods`, `{app=web}`, `{team=mon}/*`, `203.0.113.0/24`, `dns`.
    pub label: String,
    /// More: the selector, the address blocks, the pods of a cluster group.
    pub detail: String,
    /// Traffic into the node.
    pub ingress: DoorView,
    /// Traffic out of the node.
    pub egress: DoorView,
    /// Both doors guarded and no edge touches it.
    pub isolated: bool,
    /// What the node selects, for the symbolic table.
    target: Target,
}

/// An allowed flow between two nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Sender: an index into [`Graph::nodes`].
    pub from: usize,
    /// Receiver: an index into [`Graph::nodes`].
    pub to: usize,
    /// The ports, in netc notation (`8080, 53/udp`), or `any port`.
    pub ports: String,
    /// The rules that allow it (ids, sorted); from a cluster, the rules of one example flow.
    pub rules: Vec<String>,
    /// From a cluster: not every pod pair of the two groups has the same ports.
    pub partial: bool,
}

/// How much a cell of the table allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every port.
    All,
    /// Some ports.
    Some,
    /// Nothing.
    None,
    /// Two address nodes: no door of ours on either side.
    NotApplicable,
}

/// One cell of the connectivity table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// How much passes.
    pub reach: Reach,
    /// `any`, the ports, `-`, or empty for [`Reach::NotApplicable`].
    pub text: String,
    /// From a cluster: pods of the groups differ.
    pub partial: bool,
}

/// Nodes, edges and the table. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// Sorted by namespace (namespaced nodes first, in [`Graph::namespaces`] order), then kind,
    /// then label.
    pub nodes: Vec<Node>,
    /// Sorted by (from, to, ports).
    pub edges: Vec<Edge>,
    /// The namespaces nodes are drawn in, sorted.
    pub namespaces: Vec<String>,
    /// Whether the graph shows a cluster (edges from the matrix) rather than the intent.
    pub from_cluster: bool,
    /// From a cluster: node pairs with traffic whose doors were all open, left out of the edges.
    pub open_pairs_left_out: usize,
    /// `cells[from * nodes.len() + to]`.
    pub cells: Vec<Cell>,
}

/// What a node selects (private: the symbolic table's input).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// Pods of one namespace by labels.
    Pods { namespace: String, selector: LabelSelector },
    /// Pods of namespaces chosen by labels.
    Namespaces { namespaces: LabelSelector, pods: LabelSelector },
    /// Address blocks less their exceptions.
    Blocks(Vec<(IpNet, Vec<IpNet>)>),
    /// Every address.
    Anywhere,
    /// A cluster group or external address: only the matrix knows.
    Cluster,
}

/// Whether some possible pod is selected by both targets (decided by the prover, for every
/// possible pod, not for one cluster).
fn may_share_pods(a: &Target, b: &Target) -> bool {
    match (a, b) {
        (Target::Pods { namespace: na, selector: sa }, Target::Pods { namespace: nb, selector: sb }) => {
            PodSet::in_namespace(na, sa).overlaps(&PodSet::in_namespace(nb, sb))
        }
        _ => false,
    }
}

/// The names of the `external` declarations of a program, by their address blocks: the IR keeps
/// only the addresses, the graph shows the names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalNames(BTreeMap<Vec<(IpNet, Vec<IpNet>)>, String>);

impl ExternalNames {
    /// Read the declarations of `sources` (files that do not parse contribute nothing). When two
    /// declarations have the same blocks, the first name is kept.
    #[must_use]
    pub fn from_sources(sources: &[crate::SourceFile]) -> ExternalNames {
        let mut names = BTreeMap::new();
        for source in sources {
            let Ok(file) = crate::syntax::parse(&source.text) else { continue };
            let statements = file.items.iter().flat_map(|item| match item {
                crate::ast::Item::NamespaceBlock { statements, .. } => statements.iter().collect::<Vec<_>>(),
                crate::ast::Item::Statement(s) => vec![s],
                crate::ast::Item::NamespaceHeader { .. } | crate::ast::Item::StrayDoc(_) => Vec::new(),
            });
            for statement in statements {
                if let crate::ast::StatementKind::External { name, blocks } = &statement.kind {
                    let parsed: Option<Vec<(IpNet, Vec<IpNet>)>> = blocks
                        .iter()
                        .map(|b| {
                            let mut except: Vec<IpNet> =
                                b.except.iter().map(|e| parse_net(&e.node)).collect::<Option<_>>()?;
                            except.sort();
                            Some((parse_net(&b.cidr.node)?, except))
                        })
                        .collect();
                    if let Some(mut parsed) = parsed {
                        parsed.sort();
                        parsed.dedup();
                        names.entry(parsed).or_insert_with(|| name.node.clone());
                    }
                }
            }
        }
        ExternalNames(names)
    }
}

/// `10.0.0.0/8`, or a bare address as a /32 or /128.
fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>().ok().or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

impl Graph {
    /// The intent: workloads and the rules between them. See the module documentation.
    #[must_use]
    pub fn from_ir(ir: &Ir, names: &ExternalNames) -> Graph {
        let mut b = IrBuilder::new(names);
        for w in &ir.workloads {
            b.pods(&w.namespace, &w.selector);
        }
        for p in &ir.policies {
            b.pods(&p.namespace, &p.selector);
        }
        let mut raw_edges: BTreeMap<(usize, usize, String), BTreeSet<String>> = BTreeMap::new();
        for policy in &ir.policies {
            let me = b.pods(&policy.namespace, &policy.selector);
            for dir in Direction::BOTH {
                for rule in &policy.door(dir).rules {
                    for other in b.peers(policy, &rule.peers) {
                        let (from, to) = match dir {
                            Direction::Ingress => (other, me),
                            Direction::Egress => (me, other),
                        };
                        raw_edges
                            .entry((from, to, ports_text(&rule.ports)))
                            .or_default()
                            .insert(rule.id.clone());
                    }
                }
            }
        }
        let nodes: Vec<Node> = b
            .nodes
            .into_iter()
            .map(|(target, kind)| {
                let (label, detail, namespace) = describe(ir, names, &target, kind);
                let ingress = door_view(ir, &target, kind, Direction::Ingress);
                let egress = door_view(ir, &target, kind, Direction::Egress);
                Node {
                    id: String::new(),
                    kind,
                    namespace,
                    label,
                    detail,
                    ingress,
                    egress,
                    isolated: false,
                    target,
                }
            })
            .collect();
        let edges = raw_edges
            .into_iter()
            .map(|((from, to, ports), rules)| Edge {
                from,
                to,
                ports,
                rules: rules.into_iter().collect(),
                partial: false,
            })
            .collect();
        let (mut graph, _) = Graph::assemble(&nodes, edges, false, 0);
        let n = graph.nodes.len();
        graph.cells =
            (0..n * n).map(|i| symbolic_cell(ir, &graph.nodes[i / n], &graph.nodes[i % n])).collect();
        graph
    }

    /// The effect on a cluster: pods grouped by workload, edges from `matrix` (computed for `ir`
    /// over `inventory`). See the module documentation.
    #[must_use]
    pub fn from_cluster(ir: &Ir, inventory: &Inventory, matrix: &Matrix) -> Graph {
        let evaluator = Evaluator::new(ir, inventory);
        // Group the matrix's endpoints.
        let mut groups: BTreeMap<(Option<String>, NodeKind, String), Vec<usize>> = BTreeMap::new();
        for (index, endpoint) in matrix.endpoints.iter().enumerate() {
            let key = match endpoint.kind {
                EndpointKind::Pod(i) => {
                    let pod = &inventory.pods[i];
                    (Some(pod.namespace.clone()), NodeKind::Workload, group_name(ir, pod))
                }
                EndpointKind::External(i) => (None, NodeKind::External, inventory.externals[i].name.clone()),
            };
            groups.entry(key).or_default().push(index);
        }
        let members: Vec<Vec<usize>> = groups.values().cloned().collect();
        // Per endpoint: whether each door is open (externals: no door, counts as open).
        let open: Vec<[bool; 2]> = matrix
            .endpoints
            .iter()
            .map(|e| match e.kind {
                EndpointKind::Pod(i) => {
                    Direction::BOTH.map(|d| evaluator.guarding_policies(&inventory.pods[i], d).is_empty())
                }
                EndpointKind::External(_) => [true, true],
            })
            .collect();
        let mut nodes = Vec::new();
        for ((namespace, kind, name), endpoints) in &groups {
            let (detail, ingress, egress) = match kind {
                NodeKind::External => {
                    let address = match matrix.endpoints[endpoints[0]].kind {
                        EndpointKind::External(i) => inventory.externals[i].address.to_string(),
                        EndpointKind::Pod(_) => String::new(),
                    };
                    (address, DoorView::NotApplicable, DoorView::NotApplicable)
                }
                _ => {
                    let pods: Vec<&netc_ir::Pod> = endpoints
                        .iter()
                        .filter_map(|&e| match matrix.endpoints[e].kind {
                            EndpointKind::Pod(i) => Some(&inventory.pods[i]),
                            EndpointKind::External(_) => None,
                        })
                        .collect();
                    let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
                    let detail = match names.len() {
                        1 => format!("pod {}", names[0]),
                        n if n <= 3 => format!("{n} pods: {}", names.join(", ")),
                        n => format!("{n} pods: {}, ...", names[..2].join(", ")),
                    };
                    let view = |d| cluster_door(ir, &evaluator, &pods, d);
                    (detail, view(Direction::Ingress), view(Direction::Egress))
                }
            };
            nodes.push(Node {
                id: String::new(),
                kind: *kind,
                namespace: namespace.clone(),
                label: name.clone(),
                detail,
                ingress,
                egress,
                isolated: false,
                target: Target::Cluster,
            });
        }
        // Cells and edges, group by group.
        let n = nodes.len();
        let mut cells = Vec::with_capacity(n * n);
        let mut edges = Vec::new();
        let mut left_out = 0;
        for (a, from) in members.iter().enumerate() {
            for (b, to) in members.iter().enumerate() {
                let pair = GroupPair::collect(matrix, &open, from, to);
                let cell = pair.cell(matrix);
                if cell.reach != Reach::None && cell.reach != Reach::NotApplicable {
                    if pair.all_open {
                        left_out += 1;
                    } else {
                        let rules = pair
                            .example
                            .map(|(s, d, p)| example_rules(&evaluator, inventory, matrix, s, d, p));
                        edges.push(Edge {
                            from: a,
                            to: b,
                            ports: cell.text.clone(),
                            rules: rules.unwrap_or_default(),
                            partial: cell.partial,
                        });
                    }
                }
                cells.push(cell);
            }
        }
        // Sorting the nodes reorders the table with them.
        let (mut graph, order) = Graph::assemble(&nodes, edges, true, left_out);
        graph.cells = permute_cells(&cells, &order, n);
        graph
    }

    /// Sort nodes, give them ids, remap and sort edges, mark isolated nodes. Also returns the
    /// old index of each new node.
    fn assemble(
        nodes: &[Node],
        edges: Vec<Edge>,
        from_cluster: bool,
        open_pairs_left_out: usize,
    ) -> (Graph, Vec<usize>) {
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by(|&a, &b| {
            let key = |n: &Node| {
                (n.namespace.is_none(), n.namespace.clone(), n.kind, n.label.clone(), n.detail.clone())
            };
            key(&nodes[a]).cmp(&key(&nodes[b]))
        });
        let mut new_index = vec![0; nodes.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        let mut sorted: Vec<Node> = order.iter().map(|&i| nodes[i].clone()).collect();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for node in &mut sorted {
            let base = match (&node.kind, &node.namespace) {
                (NodeKind::Workload, Some(ns)) => format!("{ns}/{}", node.label),
                (NodeKind::Namespaces, _) => format!("ns:{}", node.label),
                (NodeKind::External, _) => format!("ext:{}", node.label),
                (NodeKind::Anywhere, _) => "anywhere".to_owned(),
                (NodeKind::Dns, _) => "dns".to_owned(),
                (NodeKind::Workload, None) => node.label.clone(),
            };
            let count = seen.entry(base.clone()).or_insert(0);
            *count += 1;
            node.id = if *count == 1 { base } else { format!("{base}#{count}") };
        }
        let mut edges: Vec<Edge> = edges
            .into_iter()
            .map(|mut e| {
                e.from = new_index[e.from];
                e.to = new_index[e.to];
                e
            })
            .collect();
        edges.sort_by(|a, b| (a.from, a.to, &a.ports).cmp(&(b.from, b.to, &b.ports)));
        // Isolated: both doors guarded, and no edge touches the node or a node that may share
        // pods with it (under `default deny`, the namespace's `*` is not isolated when its
        // workloads have flows).
        let touched: BTreeSet<usize> = edges.iter().flat_map(|e| [e.from, e.to]).collect();
        let isolated: Vec<bool> = (0..sorted.len())
            .map(|i| {
                sorted[i].ingress.is_guarded()
                    && sorted[i].egress.is_guarded()
                    && !touched
                        .iter()
                        .any(|&j| j == i || may_share_pods(&sorted[i].target, &sorted[j].target))
            })
            .collect();
        for (node, isolated) in sorted.iter_mut().zip(isolated) {
            node.isolated = isolated;
        }
        let namespaces: BTreeSet<String> = sorted.iter().filter_map(|n| n.namespace.clone()).collect();
        let graph = Graph {
            nodes: sorted,
            edges,
            namespaces: namespaces.into_iter().collect(),
            from_cluster,
            open_pairs_left_out,
            cells: Vec::new(),
        };
        (graph, order)
    }

    /// The cell for `from` -> `to` (node indices).
    ///
    /// # Panics
    /// When an index is out of range.
    #[must_use]
    pub fn cell(&self, from: usize, to: usize) -> &Cell {
        &self.cells[from * self.nodes.len() + to]
    }

    /// The node of the pods `selector` of `namespace` (in a graph of the intent), if there is one.
    #[must_use]
    pub fn pods_node(&self, namespace: &str, selector: &LabelSelector) -> Option<usize> {
        self.nodes.iter().position(|n| {
            matches!(&n.target, Target::Pods { namespace: ns, selector: s } if ns == namespace && s == selector)
        })
    }

    /// The nodes drawn in namespace `namespace`, in order (indices).
    pub fn nodes_in<'a>(&'a self, namespace: Option<&'a str>) -> impl Iterator<Item = usize> + 'a {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.namespace.as_deref() == namespace)
            .map(|(i, _)| i)
    }

    /// Graphviz DOT. Namespaces are clusters; guarded doors make the node blue with a thick
    /// border; isolated nodes are grey and dashed; address nodes are purple, `anywhere` yellow.
    #[must_use]
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "// {}", self.caption());
        out.push_str("digraph netc {\n");
        out.push_str("  graph [rankdir=LR, fontname=\"Helvetica,Arial,sans-serif\", fontsize=12, nodesep=0.35, ranksep=0.9];\n");
        out.push_str("  node [fontname=\"Helvetica,Arial,sans-serif\", fontsize=11, shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", color=\"#57606a\"];\n");
        out.push_str("  edge [fontname=\"Helvetica,Arial,sans-serif\", fontsize=10, color=\"#1a7f37\", fontcolor=\"#1a7f37\"];\n");
        let node_line = |out: &mut String, indent: &str, i: usize| {
            let n = &self.nodes[i];
            let mut label = dot_escape(&n.label);
            for line in self.node_lines(n) {
                label.push_str("\\n");
                label.push_str(&dot_escape(&line));
            }
            let style = match (n.kind, n.isolated, n.ingress.is_guarded() || n.egress.is_guarded()) {
                (NodeKind::Workload | NodeKind::Dns, true, _) => {
                    ", style=\"rounded,filled,dashed\", fillcolor=\"#eaeef2\", color=\"#8c959f\"".to_owned()
                }
                (NodeKind::Workload | NodeKind::Dns, false, true) => {
                    ", fillcolor=\"#ddf4ff\", color=\"#0969da\", penwidth=2".to_owned()
                }
                (NodeKind::Workload | NodeKind::Dns, false, false) => {
                    if matches!(n.ingress, DoorView::Partly) || matches!(n.egress, DoorView::Partly) {
                        ", fillcolor=\"#f1f8ff\", color=\"#0969da\"".to_owned()
                    } else {
                        String::new()
                    }
                }
                (NodeKind::Namespaces, _, _) => {
                    ", shape=folder, style=filled, fillcolor=\"#f6f8fa\"".to_owned()
                }
                (NodeKind::External, _, _) => {
                    ", style=filled, fillcolor=\"#fbefff\", color=\"#8250df\"".to_owned()
                }
                (NodeKind::Anywhere, _, _) => {
                    ", shape=ellipse, style=filled, fillcolor=\"#fff8c5\", color=\"#9a6700\"".to_owned()
                }
            };
            let _ = writeln!(out, "{indent}\"{}\" [label=\"{label}\"{style}];", dot_escape(&n.id));
        };
        for (c, ns) in self.namespaces.iter().enumerate() {
            let _ = writeln!(out, "  subgraph cluster_{c} {{");
            let _ = writeln!(out, "    label=\"namespace {}\";", dot_escape(ns));
            out.push_str("    style=\"rounded,dashed\"; color=\"#8c959f\"; fontcolor=\"#57606a\";\n");
            for i in self.nodes_in(Some(ns)) {
                node_line(&mut out, "    ", i);
            }
            out.push_str("  }\n");
        }
        for i in self.nodes_in(None) {
            node_line(&mut out, "  ", i);
        }
        for e in &self.edges {
            // Rule ids are left out: they change with the rule's meaning, and `netc report` links
            // every edge to its rules.
            let mut attrs = format!("label=\"{}\"", dot_escape(&self.edge_label(e)));
            if e.partial {
                attrs.push_str(", style=dashed");
            }
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [{attrs}];",
                dot_escape(&self.nodes[e.from].id),
                dot_escape(&self.nodes[e.to].id)
            );
        }
        out.push_str("}\n");
        out
    }

    /// Mermaid `flowchart LR`. Namespaces are subgraphs; classes `guarded`, `isolated`,
    /// `address` and `anywhere` style the nodes like the DOT output.
    #[must_use]
    pub fn to_mermaid(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "%% {}", self.caption());
        out.push_str("flowchart LR\n");
        let node_line = |out: &mut String, indent: &str, i: usize| {
            let n = &self.nodes[i];
            let mut label = mermaid_escape(&n.label);
            for line in self.node_lines(n) {
                label.push_str("<br/>");
                label.push_str(&mermaid_escape(&line));
            }
            let (open, close) = match n.kind {
                NodeKind::Workload => ("[\"", "\"]"),
                NodeKind::Namespaces => ("[/\"", "\"/]"),
                NodeKind::Dns => ("([\"", "\"])"),
                NodeKind::External => ("[(\"", "\")]"),
                NodeKind::Anywhere => ("{{\"", "\"}}"),
            };
            let _ = writeln!(out, "{indent}n{i}{open}{label}{close}");
        };
        for (c, ns) in self.namespaces.iter().enumerate() {
            let _ = writeln!(out, "  subgraph ns{c}[\"namespace {}\"]", mermaid_escape(ns));
            for i in self.nodes_in(Some(ns)) {
                node_line(&mut out, "    ", i);
            }
            out.push_str("  end\n");
        }
        for i in self.nodes_in(None) {
            node_line(&mut out, "  ", i);
        }
        for e in &self.edges {
            let arrow = if e.partial { "-.->" } else { "-->" };
            let _ =
                writeln!(out, "  n{} {arrow}|\"{}\"| n{}", e.from, mermaid_escape(&self.edge_label(e)), e.to);
        }
        type Pick = fn(&Node) -> bool;
        let classes: [(&str, &str, Pick); 5] = [
            ("guarded", "fill:#ddf4ff,stroke:#0969da,stroke-width:2px", |n| {
                !n.isolated && (n.ingress.is_guarded() || n.egress.is_guarded())
            }),
            ("isolated", "fill:#eaeef2,stroke:#8c959f,stroke-dasharray:5 5", |n| n.isolated),
            ("namespaces", "fill:#f6f8fa,stroke:#57606a", |n| n.kind == NodeKind::Namespaces),
            ("address", "fill:#fbefff,stroke:#8250df", |n| n.kind == NodeKind::External),
            ("anywhere", "fill:#fff8c5,stroke:#9a6700", |n| n.kind == NodeKind::Anywhere),
        ];
        for (name, style, pick) in &classes {
            let members: Vec<String> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| pick(n))
                .map(|(i, _)| format!("n{i}"))
                .collect();
            if !members.is_empty() {
                let _ = writeln!(out, "  classDef {name} {style}");
                let _ = writeln!(out, "  class {} {name}", members.join(","));
            }
        }
        out
    }

    /// One line saying what the graph shows.
    #[must_use]
    pub fn caption(&self) -> String {
        if self.from_cluster {
            let mut s = "netc graph: the cluster's pods grouped by workload; edges are the flows the policies allow, doors all open left out".to_owned();
            if self.open_pairs_left_out > 0 {
                let _ = write!(s, " ({} pairs)", self.open_pairs_left_out);
            }
            s
        } else {
            "netc graph: workloads by namespace; edges are the rules of the intent, labelled with their ports"
                .to_owned()
        }
    }

    /// Lines under a node's name: its selector or detail, and its doors.
    #[must_use]
    pub fn node_lines(&self, n: &Node) -> Vec<String> {
        let mut lines = Vec::new();
        if !n.detail.is_empty() && n.detail != n.label {
            lines.push(n.detail.clone());
        }
        if n.isolated {
            lines.push("isolated".to_owned());
        } else if let Some(doors) = doors_line(n) {
            lines.push(doors);
        }
        lines
    }

    /// An edge's label: its ports, marked when only some pods of the groups get them.
    #[must_use]
    pub fn edge_label(&self, e: &Edge) -> String {
        if e.partial { format!("{} (some pods)", e.ports) } else { e.ports.clone() }
    }
}

/// `in: guarded, out: open`, or `None` for nodes without doors.
#[must_use]
pub fn doors_line(n: &Node) -> Option<String> {
    match (n.ingress.word(), n.egress.word()) {
        ("", "") => None,
        (i, "") => Some(format!("in: {i}")),
        ("", e) => Some(format!("out: {e}")),
        (i, e) => Some(format!("in: {i}, out: {e}")),
    }
}

/// A port in netc notation: `8080`, `53/udp`, `8000-8100`, `metrics`, `*/udp`.
#[must_use]
pub fn port_text(p: &Port) -> String {
    let suffix = match p.protocol {
        Protocol::Tcp => "",
        Protocol::Udp => "/udp",
        Protocol::Sctp => "/sctp",
    };
    match (&p.port, p.end_port) {
        (None, _) => format!("*/{}", p.protocol.as_str().to_ascii_lowercase()),
        (Some(PortValue::Number(n)), Some(end)) if end != *n => format!("{n}-{end}{suffix}"),
        (Some(v), _) => format!("{v}{suffix}"),
    }
}

/// A rule's ports in netc notation, `any port` when the rule has none (all ports).
#[must_use]
pub fn ports_text(ports: &[Port]) -> String {
    if ports.is_empty() {
        "any port".to_owned()
    } else {
        ports.iter().map(port_text).collect::<Vec<_>>().join(", ")
    }
}

/// A matrix probe in netc notation: `8080`, `53/udp`, `other ports`, `other udp ports`.
#[must_use]
pub fn probe_text(p: &Probe) -> String {
    if p.other {
        match p.protocol {
            Protocol::Tcp => "other ports".to_owned(),
            proto => format!("other {} ports", proto.as_str().to_ascii_lowercase()),
        }
    } else {
        port_text(&Port { protocol: p.protocol, port: Some(PortValue::Number(p.port)), end_port: None })
    }
}

/// A peer as netc source would write it (`app=web` pods of the policy's namespace are `{app=web}`,
/// `{team=x}/*`, `10.0.0.0/8 except 10.1.0.0/16`, `dns`), for reports.
#[must_use]
pub fn peer_text(ir: &Ir, policy: &Policy, peer: &Peer) -> String {
    match peer {
        Peer::IpBlock { cidr, except } => block_text(*cidr, except),
        Peer::Pods { namespaces, pods } => {
            if is_dns(namespaces.as_ref(), pods.as_ref()) {
                return "dns".to_owned();
            }
            let pods = pods.clone().unwrap_or_default();
            match namespaces {
                None => pods_name(ir, &policy.namespace, &pods),
                Some(ns) => match ns.as_namespace_name() {
                    Some(name) if pods.is_empty() => format!("{name}/*"),
                    Some(name) => format!("{name}/{}", pods_name(ir, name, &pods)),
                    None => format!(
                        "{}/{}",
                        selector_text(ns),
                        if pods.is_empty() { "*".to_owned() } else { selector_text(&pods) }
                    ),
                },
            }
        }
    }
}

/// `{app=web}`, or `*` for the empty selector.
fn selector_text(s: &LabelSelector) -> String {
    if s.is_empty() { "*".to_owned() } else { format!("{{{s}}}") }
}

/// The name source uses for pods `selector` of `namespace`: a workload's name, `*`, `{...}`.
fn pods_name(ir: &Ir, namespace: &str, selector: &LabelSelector) -> String {
    if selector.is_empty() {
        return "*".to_owned();
    }
    ir.workloads
        .iter()
        .find(|w| w.namespace == namespace && w.selector == *selector)
        .map(|w| w.name.clone())
        .or_else(|| {
            ir.policies
                .iter()
                .find(|p| p.namespace == namespace && p.selector == *selector)
                .map(|p| p.workload.clone())
        })
        .unwrap_or_else(|| selector_text(selector))
}

fn block_text(cidr: IpNet, except: &[IpNet]) -> String {
    match except {
        [] => cidr.to_string(),
        [one] => format!("{cidr} except {one}"),
        many => {
            format!("{cidr} except ({})", many.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        }
    }
}

fn is_dns(namespaces: Option<&LabelSelector>, pods: Option<&LabelSelector>) -> bool {
    namespaces.and_then(LabelSelector::as_namespace_name) == Some(DNS_NAMESPACE)
        && pods.is_some_and(|p| *p == dns_selector())
}

fn dns_selector() -> LabelSelector {
    LabelSelector::labels([("k8s-app", "kube-dns")])
}

/// Collects the nodes of the intent graph, one per distinct target.
struct IrBuilder<'n> {
    names: &'n ExternalNames,
    index: BTreeMap<Target, usize>,
    nodes: Vec<(Target, NodeKind)>,
}

impl<'n> IrBuilder<'n> {
    fn new(names: &'n ExternalNames) -> IrBuilder<'n> {
        IrBuilder { names, index: BTreeMap::new(), nodes: Vec::new() }
    }

    fn node(&mut self, target: Target, kind: NodeKind) -> usize {
        if let Some(&i) = self.index.get(&target) {
            return i;
        }
        let i = self.nodes.len();
        self.index.insert(target.clone(), i);
        self.nodes.push((target, kind));
        i
    }

    fn pods(&mut self, namespace: &str, selector: &LabelSelector) -> usize {
        let target = Target::Pods { namespace: namespace.to_owned(), selector: selector.clone() };
        let kind = if namespace == DNS_NAMESPACE && *selector == dns_selector() {
            NodeKind::Dns
        } else {
            NodeKind::Workload
        };
        self.node(target, kind)
    }

    /// The nodes a rule's peers name: address blocks of one rule make one node (an `external`
    /// declaration is usually several blocks); no peers at all is `anywhere`.
    fn peers(&mut self, policy: &Policy, peers: &[Peer]) -> Vec<usize> {
        if peers.is_empty() {
            return vec![self.node(Target::Anywhere, NodeKind::Anywhere)];
        }
        let mut out = Vec::new();
        let mut blocks = Vec::new();
        for peer in peers {
            match peer {
                Peer::IpBlock { cidr, except } => {
                    let mut except = except.clone();
                    except.sort();
                    blocks.push((*cidr, except));
                }
                Peer::Pods { namespaces, pods } => {
                    let pods = pods.clone().unwrap_or_default();
                    let node = match namespaces {
                        None => self.pods(&policy.namespace, &pods),
                        Some(ns) => match ns.as_namespace_name() {
                            Some(name) => self.pods(name, &pods),
                            None => self.node(
                                Target::Namespaces { namespaces: ns.clone(), pods },
                                NodeKind::Namespaces,
                            ),
                        },
                    };
                    out.push(node);
                }
            }
        }
        if !blocks.is_empty() {
            blocks.sort();
            blocks.dedup();
            // Declared externals whose blocks are all here become one node each (the name is what
            // the source says); blocks written directly in the arrow are one node each.
            for declared in self.names.0.keys() {
                if declared.iter().all(|b| blocks.contains(b)) {
                    blocks.retain(|b| !declared.contains(b));
                    out.push(self.node(Target::Blocks(declared.clone()), NodeKind::External));
                }
            }
            for block in blocks {
                out.push(self.node(Target::Blocks(vec![block]), NodeKind::External));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// (label, detail, namespace drawn in) of an intent node.
fn describe(
    ir: &Ir,
    names: &ExternalNames,
    target: &Target,
    kind: NodeKind,
) -> (String, String, Option<String>) {
    match target {
        Target::Pods { namespace, selector } => {
            if kind == NodeKind::Dns {
                return ("dns".to_owned(), "kube-system/{k8s-app=kube-dns}".to_owned(), None);
            }
            let label = match pods_name(ir, namespace, selector).as_str() {
                "*" => "all pods".to_owned(),
                name => name.to_owned(),
            };
            let detail = if selector.is_empty() {
                "*".to_owned()
            } else if label == selector_text(selector)
                || *selector == LabelSelector::labels([("app", label.as_str())])
            {
                // An inline selector is its own name, and a bare name means `app=<name>`: nothing
                // to add.
                String::new()
            } else {
                selector.to_string()
            };
            (label, detail, Some(namespace.clone()))
        }
        Target::Namespaces { namespaces, pods } => {
            let label = format!("{}/{}", selector_text(namespaces), selector_text(pods));
            let detail = match (namespaces.is_empty(), pods.is_empty()) {
                (true, true) => "every pod of every namespace".to_owned(),
                (true, false) => format!("pods {pods} of every namespace"),
                (false, true) => format!("every pod of namespaces labelled {namespaces}"),
                (false, false) => format!("pods {pods} of namespaces labelled {namespaces}"),
            };
            (label, detail, None)
        }
        Target::Blocks(blocks) => {
            let texts: Vec<String> = blocks.iter().map(|(c, e)| block_text(*c, e)).collect();
            let label = match (names.0.get(blocks), texts.len()) {
                (Some(name), _) => name.clone(),
                (None, 1) => texts[0].clone(),
                (None, n) => format!("{} +{}", blocks[0].0, n - 1),
            };
            (label, texts.join(", "), None)
        }
        Target::Anywhere => {
            ("anywhere".to_owned(), "any address, in the cluster or out of it".to_owned(), None)
        }
        Target::Cluster => (String::new(), String::new(), None),
    }
}

/// The policies of `ir` that select every pod of `target` (pods of one namespace), and those
/// that select only some of them.
fn covering(ir: &Ir, namespace: &str, selector: &LabelSelector) -> (Vec<usize>, Vec<usize>) {
    let mut all = Vec::new();
    let mut some = Vec::new();
    for (i, p) in ir.policies.iter().enumerate() {
        if p.namespace != namespace {
            continue;
        }
        if implies(selector, &p.selector) {
            all.push(i);
        } else if implies(&p.selector, selector) {
            some.push(i);
        }
    }
    (all, some)
}

fn door_view(ir: &Ir, target: &Target, kind: NodeKind, dir: Direction) -> DoorView {
    match target {
        Target::Pods { namespace, selector } => {
            let (all, some) = covering(ir, namespace, selector);
            let guarding: Vec<usize> =
                all.into_iter().filter(|&i| ir.policies[i].door(dir).is_guarded()).collect();
            if guarding.is_empty() {
                return if some.iter().any(|&i| ir.policies[i].door(dir).is_guarded()) {
                    DoorView::Partly
                } else if kind == NodeKind::Dns {
                    // kube-dns is the cluster's, not the program's: no policy here, nothing known.
                    DoorView::Unknown
                } else {
                    DoorView::Open
                };
            }
            guarded_view(ir, guarding, dir)
        }
        Target::Namespaces { .. } => DoorView::Unknown,
        Target::Blocks(_) | Target::Anywhere | Target::Cluster => DoorView::NotApplicable,
    }
}

fn guarded_view(ir: &Ir, policies: Vec<usize>, dir: Direction) -> DoorView {
    let mut statements: Vec<Span> =
        policies.iter().flat_map(|&i| ir.policies[i].door(dir).guarded_by.iter().cloned()).collect();
    statements.sort();
    statements.dedup();
    let rules =
        policies.iter().flat_map(|&i| ir.policies[i].door(dir).rules.iter().map(|r| r.id.clone())).collect();
    DoorView::Guarded { policies, statements, rules }
}

/// The door of a cluster group: guarded when every pod is, by the union of their policies.
fn cluster_door(ir: &Ir, evaluator: &Evaluator<'_>, pods: &[&netc_ir::Pod], dir: Direction) -> DoorView {
    let per_pod: Vec<Vec<usize>> =
        pods.iter().map(|p| evaluator.guarding_policies(p, dir).iter().map(|r| r.policy).collect()).collect();
    if per_pod.iter().all(Vec::is_empty) {
        return DoorView::Open;
    }
    if per_pod.iter().any(Vec::is_empty) {
        return DoorView::Partly;
    }
    let policies: BTreeSet<usize> = per_pod.into_iter().flatten().collect();
    guarded_view(ir, policies.into_iter().collect(), dir)
}

/// The group a pod is drawn in: the named workload of the IR it belongs to (as `explain` and
/// `diff` name it), else its `app` label (the convention netc's bare names follow) or its
/// `k8s-app` label, else its own name.
fn group_name(ir: &Ir, pod: &netc_ir::Pod) -> String {
    crate::analysis::workloads::workload_of(ir, pod)
        .map(|w| w.name.clone())
        .or_else(|| pod.labels.get("app").cloned())
        .or_else(|| pod.labels.get("k8s-app").cloned())
        .unwrap_or_else(|| pod.name.clone())
}

/// What the matrix says about every pod pair of two groups.
struct GroupPair {
    /// Union of allowed probes.
    union: BTreeSet<usize>,
    /// Whether every pair allows exactly `union`.
    uniform: bool,
    /// Every pair with traffic has both doors open.
    all_open: bool,
    /// Every pair is two addresses.
    all_external: bool,
    /// One allowed (src, dst, probe), to find rules.
    example: Option<(usize, usize, usize)>,
}

impl GroupPair {
    fn collect(matrix: &Matrix, open: &[[bool; 2]], from: &[usize], to: &[usize]) -> GroupPair {
        let mut pair = GroupPair {
            union: BTreeSet::new(),
            uniform: true,
            all_open: true,
            all_external: true,
            example: None,
        };
        let mut first: Option<Vec<usize>> = None;
        for &s in from {
            for &d in to {
                let external = |i: usize| matches!(matrix.endpoints[i].kind, EndpointKind::External(_));
                if external(s) && external(d) {
                    continue;
                }
                pair.all_external = false;
                let allowed: Vec<usize> =
                    (0..matrix.probes.len()).filter(|&p| matrix.is_allowed(s, d, p)).collect();
                if !allowed.is_empty() {
                    // Egress of the sender (index 1) and ingress of the receiver (index 0).
                    if !(open[s][1] && open[d][0]) {
                        pair.all_open = false;
                        if pair.example.is_none() {
                            pair.example = Some((s, d, allowed[0]));
                        }
                    }
                }
                match &first {
                    None => first = Some(allowed.clone()),
                    Some(f) if *f != allowed => pair.uniform = false,
                    Some(_) => {}
                }
                pair.union.extend(allowed);
            }
        }
        pair
    }

    fn cell(&self, matrix: &Matrix) -> Cell {
        if self.all_external {
            return Cell { reach: Reach::NotApplicable, text: String::new(), partial: false };
        }
        let partial = !self.uniform && !self.union.is_empty();
        if self.union.is_empty() {
            Cell { reach: Reach::None, text: "-".to_owned(), partial }
        } else if self.union.len() == matrix.probes.len() {
            Cell { reach: Reach::All, text: "any port".to_owned(), partial }
        } else {
            let text =
                self.union.iter().map(|&p| probe_text(&matrix.probes[p])).collect::<Vec<_>>().join(", ");
            Cell { reach: Reach::Some, text, partial }
        }
    }
}

/// The ids of the rules that let one example flow through (both doors), sorted.
fn example_rules(
    evaluator: &Evaluator<'_>,
    inventory: &Inventory,
    matrix: &Matrix,
    src: usize,
    dst: usize,
    probe: usize,
) -> Vec<String> {
    let endpoint = |i: usize| match matrix.endpoints[i].kind {
        EndpointKind::Pod(p) => Endpoint::Pod(&inventory.pods[p]),
        EndpointKind::External(e) => Endpoint::External(inventory.externals[e].address),
    };
    let probe = matrix.probes[probe];
    let (src, dst) = (endpoint(src), endpoint(dst));
    let mut ids = BTreeSet::new();
    // The rules of every family the pair can use (a dual-stack pair may pass by different rules).
    for family in Flow::families(&src, &dst) {
        let verdict =
            evaluator.evaluate(&Flow { src, dst, protocol: probe.protocol, port: probe.port, family });
        for door in [&verdict.egress, &verdict.ingress] {
            if let DoorVerdict::Allowed { rules } = door {
                for r in rules {
                    if let Some((_, rule)) = r.resolve(evaluator.ir()) {
                        ids.insert(rule.id.clone());
                    }
                }
            }
        }
    }
    ids.into_iter().collect()
}

fn permute_cells(cells: &[Cell], order: &[usize], n: usize) -> Vec<Cell> {
    let mut out = Vec::with_capacity(n * n);
    for &a in order {
        for &b in order {
            out.push(cells[a * n + b].clone());
        }
    }
    out
}

// ---------- the symbolic table (intent only) ----------

/// Ports as a set: everything, or a list (empty: nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
enum PortSet {
    All,
    List(Vec<Port>),
}

impl PortSet {
    fn none() -> PortSet {
        PortSet::List(Vec::new())
    }

    fn of(ports: &[Port]) -> PortSet {
        if ports.is_empty() { PortSet::All } else { PortSet::List(ports.to_vec()) }
    }

    fn union(self, other: PortSet) -> PortSet {
        match (self, other) {
            (PortSet::All, _) | (_, PortSet::All) => PortSet::All,
            (PortSet::List(mut a), PortSet::List(b)) => {
                a.extend(b);
                a.sort();
                a.dedup();
                PortSet::List(a)
            }
        }
    }

    /// What both allow. A named port against a number cannot be decided without the pod's
    /// container ports, and counts as not matching.
    fn intersect(&self, other: &PortSet) -> PortSet {
        match (self, other) {
            (PortSet::All, x) | (x, PortSet::All) => x.clone(),
            (PortSet::List(a), PortSet::List(b)) => {
                let mut out: Vec<Port> =
                    a.iter().flat_map(|x| b.iter().filter_map(move |y| port_meet(x, y))).collect();
                out.sort();
                out.dedup();
                PortSet::List(out)
            }
        }
    }
}

fn port_meet(a: &Port, b: &Port) -> Option<Port> {
    if a.protocol != b.protocol {
        return None;
    }
    match (&a.port, &b.port) {
        (None, _) => Some(b.clone()),
        (_, None) => Some(a.clone()),
        (Some(PortValue::Name(x)), Some(PortValue::Name(y))) => (x == y).then(|| a.clone()),
        (Some(PortValue::Number(x)), Some(PortValue::Number(y))) => {
            let lo = (*x).max(*y);
            let hi = a.end_port.unwrap_or(*x).min(b.end_port.unwrap_or(*y));
            (lo <= hi).then(|| Port {
                protocol: a.protocol,
                port: Some(PortValue::Number(lo)),
                end_port: (hi > lo).then_some(hi),
            })
        }
        _ => None,
    }
}

/// The cell `from` -> `to` of the intent table: the sender's egress AND the receiver's ingress.
fn symbolic_cell(ir: &Ir, from: &Node, to: &Node) -> Cell {
    let address = |n: &Node| matches!(n.kind, NodeKind::External | NodeKind::Anywhere);
    if address(from) && address(to) {
        return Cell { reach: Reach::NotApplicable, text: String::new(), partial: false };
    }
    let out = door_ports(ir, &from.egress, Direction::Egress, &to.target);
    let into = door_ports(ir, &to.ingress, Direction::Ingress, &from.target);
    match out.intersect(&into) {
        PortSet::All => Cell { reach: Reach::All, text: "any port".to_owned(), partial: false },
        PortSet::List(l) if l.is_empty() => Cell { reach: Reach::None, text: "-".to_owned(), partial: false },
        PortSet::List(l) => Cell { reach: Reach::Some, text: ports_text(&l), partial: false },
    }
}

/// What a door lets through to or from `other`.
fn door_ports(ir: &Ir, door: &DoorView, dir: Direction, other: &Target) -> PortSet {
    let DoorView::Guarded { policies, .. } = door else { return PortSet::All };
    let mut set = PortSet::none();
    for &i in policies {
        let policy = &ir.policies[i];
        for rule in &policy.door(dir).rules {
            if rule.peers.is_empty() || rule.peers.iter().any(|p| peer_covers(policy, p, other)) {
                set = set.union(PortSet::of(&rule.ports));
            }
        }
    }
    set
}

/// Whether `peer`, written in `policy`, names everything `target` stands for.
fn peer_covers(policy: &Policy, peer: &Peer, target: &Target) -> bool {
    match (peer, target) {
        (Peer::Pods { namespaces, pods }, Target::Pods { namespace, selector }) => {
            let namespace_ok = match namespaces {
                None => *namespace == policy.namespace,
                Some(ns) => implies(&LabelSelector::namespace_named(namespace), ns),
            };
            namespace_ok && pods.as_ref().is_none_or(|p| implies(selector, p))
        }
        (Peer::Pods { namespaces: Some(ns), pods }, Target::Namespaces { namespaces, pods: target_pods }) => {
            implies(namespaces, ns) && pods.as_ref().is_none_or(|p| implies(target_pods, p))
        }
        (Peer::IpBlock { cidr, except }, Target::Blocks(blocks)) => blocks.iter().all(|(c, ex)| {
            cidr.contains(c)
                && except.iter().all(|e| {
                    !(e.contains(&c.network()) || c.contains(&e.network()))
                        || ex.iter().any(|x| x.contains(e))
                })
        }),
        _ => false,
    }
}

/// Whether every label set that `inner` matches is also matched by `outer`.
fn implies(inner: &LabelSelector, outer: &LabelSelector) -> bool {
    outer
        .match_labels
        .iter()
        .all(|(k, v)| values(inner, k).is_some_and(|s| s.len() == 1 && s.contains(v.as_str())))
        && outer.match_expressions.iter().all(|r| {
            if inner.match_expressions.contains(r) {
                return true;
            }
            let known = values(inner, &r.key);
            let absent = inner
                .match_expressions
                .iter()
                .any(|q| q.key == r.key && q.operator == Operator::DoesNotExist);
            match r.operator {
                Operator::In => known.is_some_and(|s| s.iter().all(|v| r.values.iter().any(|x| x == v))),
                Operator::NotIn => {
                    absent
                        || known.is_some_and(|s| s.iter().all(|v| !r.values.iter().any(|x| x == v)))
                        || inner.match_expressions.iter().any(|q| {
                            q.key == r.key
                                && q.operator == Operator::NotIn
                                && r.values.iter().all(|v| q.values.contains(v))
                        })
                }
                Operator::Exists => {
                    known.is_some()
                        || inner
                            .match_expressions
                            .iter()
                            .any(|q| q.key == r.key && q.operator == Operator::Exists)
                }
                Operator::DoesNotExist => absent,
            }
        })
}

/// The values `selector` allows for `key`, when it requires the key to be present with one of
/// finitely many values.
fn values<'s>(selector: &'s LabelSelector, key: &str) -> Option<BTreeSet<&'s str>> {
    let mut set: Option<BTreeSet<&str>> =
        selector.match_labels.get(key).map(|v| BTreeSet::from([v.as_str()]));
    for r in selector.match_expressions.iter().filter(|r| r.key == key && r.operator == Operator::In) {
        let these: BTreeSet<&str> = r.values.iter().map(String::as_str).collect();
        set = Some(match set {
            None => these,
            Some(s) => s.intersection(&these).copied().collect(),
        });
    }
    set
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace(['\n', '\r'], " ")
}

/// Mermaid reads labels as HTML with its own entity syntax (`#quot;`).
fn mermaid_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use netc_ir::Requirement;

    fn sel(labels: &[(&str, &str)], exprs: &[(&str, Operator, &[&str])]) -> LabelSelector {
        LabelSelector {
            match_labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            match_expressions: exprs
                .iter()
                .map(|(k, op, vs)| Requirement {
                    key: (*k).to_owned(),
                    operator: *op,
                    values: vs.iter().map(|v| (*v).to_owned()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_narrower_selector_implies_a_wider_one_and_not_the_other_way() {
        let api = sel(&[("app", "api")], &[]);
        let api_web = sel(&[("app", "api"), ("tier", "web")], &[]);
        assert!(implies(&api_web, &api));
        assert!(!implies(&api, &api_web));
        assert!(implies(&api, &LabelSelector::everything()), "everything covers every workload");
        assert!(!implies(&LabelSelector::everything(), &api));
        assert!(implies(&api, &api));
    }

    #[test]
    fn set_requirements_are_implied_by_what_fixes_their_values() {
        let web = sel(&[("tier", "web")], &[]);
        let in_web_api = sel(&[], &[("tier", Operator::In, &["api", "web"])]);
        let in_web = sel(&[], &[("tier", Operator::In, &["web"])]);
        assert!(implies(&web, &in_web_api), "tier=web is one of (api, web)");
        assert!(!implies(&in_web_api, &web), "tier in (api, web) may be api");
        assert!(implies(&in_web, &web), "tier in (web) is tier=web");
        let not_db = sel(&[], &[("tier", Operator::NotIn, &["db"])]);
        assert!(implies(&web, &not_db));
        assert!(!implies(&LabelSelector::everything(), &not_db));
        let absent = sel(&[], &[("tier", Operator::DoesNotExist, &[])]);
        assert!(implies(&absent, &not_db), "no tier label is not tier=db");
        assert!(!implies(&web, &absent));
        let exists = sel(&[], &[("tier", Operator::Exists, &[])]);
        assert!(implies(&web, &exists) && implies(&in_web_api, &exists));
        assert!(!implies(&absent, &exists));
        let not_db_or_cache = sel(&[], &[("tier", Operator::NotIn, &["cache", "db"])]);
        assert!(implies(&not_db_or_cache, &not_db));
        assert!(!implies(&not_db, &not_db_or_cache));
    }

    #[test]
    fn ports_meet_on_protocol_number_range_and_name() {
        let tcp = |p: u16, end: Option<u16>| Port {
            protocol: Protocol::Tcp,
            port: Some(PortValue::Number(p)),
            end_port: end,
        };
        let all_tcp = Port { protocol: Protocol::Tcp, port: None, end_port: None };
        let named =
            |n: &str| Port { protocol: Protocol::Tcp, port: Some(PortValue::Name(n.into())), end_port: None };
        assert_eq!(port_meet(&tcp(80, Some(90)), &tcp(85, Some(100))), Some(tcp(85, Some(90))));
        assert_eq!(port_meet(&tcp(80, Some(90)), &tcp(90, None)), Some(tcp(90, None)));
        assert_eq!(port_meet(&tcp(80, None), &tcp(81, None)), None);
        assert_eq!(port_meet(&all_tcp, &tcp(443, None)), Some(tcp(443, None)));
        let udp = Port { protocol: Protocol::Udp, port: Some(PortValue::Number(443)), end_port: None };
        assert_eq!(port_meet(&all_tcp, &udp), None, "protocols differ");
        assert_eq!(port_meet(&named("http"), &named("http")), Some(named("http")));
        assert_eq!(port_meet(&named("http"), &named("grpc")), None);
        assert_eq!(port_meet(&named("http"), &tcp(8080, None)), None, "undecidable without the pod");
        assert_eq!(PortSet::All.intersect(&PortSet::of(&[tcp(1, None)])), PortSet::of(&[tcp(1, None)]));
        assert_eq!(PortSet::none().union(PortSet::All), PortSet::All);
    }

    #[test]
    fn ports_are_written_in_netc_notation() {
        let p = |protocol, port: Option<PortValue>, end_port| Port { protocol, port, end_port };
        assert_eq!(port_text(&p(Protocol::Tcp, Some(PortValue::Number(8080)), None)), "8080");
        assert_eq!(port_text(&p(Protocol::Udp, Some(PortValue::Number(53)), None)), "53/udp");
        assert_eq!(port_text(&p(Protocol::Tcp, Some(PortValue::Number(8000)), Some(8100))), "8000-8100");
        assert_eq!(port_text(&p(Protocol::Sctp, None, None)), "*/sctp");
        assert_eq!(port_text(&p(Protocol::Tcp, Some(PortValue::Name("metrics".into())), None)), "metrics");
        assert_eq!(ports_text(&[]), "any port");
    }

    #[test]
    fn dot_and_mermaid_escaping_keeps_labels_inside_their_quotes() {
        assert_eq!(dot_escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(dot_escape("two\nlines"), "two lines");
        assert_eq!(mermaid_escape(r#"<b>"x" & #1"#), "#lt;b#gt;#quot;x#quot; #amp; #35;1");
    }
}
