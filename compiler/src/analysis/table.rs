//! `netc matrix --format table`: the all-pairs matrix as a table a person can read.
//!
//! Compared with [`Matrix::render_text`] (one row and column per endpoint, every probe spelled
//! out), this table:
//! - merges the pods of one workload that behave exactly alike (same row and same column in every
//!   cell) into one row and column, `shop/web (3 pods)`, and lists the members below;
//! - writes cells short: `80,443` (TCP unless marked `/udp` or `/sctp`), `other` for the port no
//!   rule mentions, `all`, `-`, and `all but 80` when that is shorter;
//! - wraps wide tables into blocks of columns that fit the given width, repeating the row labels,
//!   and shortens very long names in the middle.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use netc_ir::{Inventory, Ir, Protocol};

use super::matrix::{EndpointKind, Matrix, Probe};
use super::workloads::group_of;

/// Row labels longer than this are shortened in the middle.
const MAX_LABEL: usize = 48;
/// Members listed per merged row before "and N more".
const MAX_MEMBERS: usize = 8;

/// One row (and column) of the table: endpoints that behave alike.
struct Group {
    label: String,
    members: Vec<usize>,
}

/// The matrix as a table at most `width` characters wide (a narrower width is used as 40).
/// `irs` name the workloads pods are grouped under.
#[must_use]
pub fn render_table(matrix: &Matrix, inventory: &Inventory, irs: &[&Ir], width: usize) -> String {
    let width = width.max(40);
    let n = matrix.endpoints.len();
    let p = matrix.probes.len();
    let external = |i: usize| matches!(matrix.endpoints[i].kind, EndpointKind::External(_));
    let label_of = |i: usize| match matrix.endpoints[i].kind {
        EndpointKind::Pod(k) => {
            inventory.pods.get(k).map_or_else(|| matrix.endpoints[i].name.clone(), |pod| group_of(irs, pod))
        }
        EndpointKind::External(_) => matrix.endpoints[i].name.clone(),
    };
    // Fingerprints of rows and columns, then exact comparison with the group's first member.
    let fingerprint = |i: usize| {
        let mut h = DefaultHasher::new();
        for j in 0..n {
            for k in 0..p {
                (matrix.is_allowed(i, j, k), matrix.is_allowed(j, i, k)).hash(&mut h);
            }
        }
        h.finish()
    };
    let same = |a: usize, b: usize| {
        (0..n).all(|j| {
            (0..p).all(|k| {
                matrix.is_allowed(a, j, k) == matrix.is_allowed(b, j, k)
                    && matrix.is_allowed(j, a, k) == matrix.is_allowed(j, b, k)
            })
        })
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<(String, u64), Vec<usize>> = HashMap::new();
    for i in 0..n {
        if external(i) {
            groups.push(Group { label: label_of(i), members: vec![i] });
            continue;
        }
        let key = (label_of(i), fingerprint(i));
        let candidates = index.entry(key.clone()).or_default();
        match candidates.iter().copied().find(|&g| same(groups[g].members[0], i)) {
            Some(g) => groups[g].members.push(i),
            None => {
                candidates.push(groups.len());
                groups.push(Group { label: key.0, members: vec![i] });
            }
        }
    }
    // Rows are named after their workload, and after their pods where two rows share a workload.
    let mut label_count: HashMap<String, usize> = HashMap::new();
    for gr in &groups {
        *label_count.entry(gr.label.clone()).or_default() += 1;
    }
    for gr in &mut groups {
        if label_count.get(&gr.label).copied().unwrap_or(0) > 1 && gr.members.len() == 1 {
            gr.label.clone_from(&matrix.endpoints[gr.members[0]].name);
        } else if gr.members.len() > 1 {
            gr.label = format!("{} ({} pods)", gr.label, gr.members.len());
        }
    }
    let mut out = String::new();
    let probes: Vec<String> = matrix
        .probes
        .iter()
        .map(|pr| if pr.other { format!("{pr} (port {})", pr.port) } else { pr.to_string() })
        .collect();
    let _ = writeln!(out, "probes: {}", probes.join(", "));
    out.push_str("rows send, columns receive; a cell lists the ports allowed (TCP unless marked),\n");
    out.push_str("other = a port no rule mentions, all = every probe, - = none\n");
    let g = groups.len();
    let row_labels: Vec<String> =
        groups.iter().enumerate().map(|(i, gr)| format!("[{}] {}", i + 1, shorten(&gr.label))).collect();
    let label_width = row_labels.iter().map(|l| l.chars().count()).max().unwrap_or(0).max("from \\ to".len());
    let cells: Vec<Vec<String>> = (0..g)
        .map(|r| {
            (0..g)
                .map(|c| {
                    let (src, dst) = (groups[r].members[0], groups[c].members[0]);
                    if external(src) && external(dst) { ".".to_owned() } else { cell(matrix, src, dst) }
                })
                .collect()
        })
        .collect();
    let col_width: Vec<usize> = (0..g)
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
                .max(format!("[{}]", c + 1).len())
        })
        .collect();
    // Blocks of columns that fit.
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    while start < g {
        let mut used = label_width;
        let mut end = start;
        while end < g && (end == start || used + 2 + col_width[end] <= width) {
            used += 2 + col_width[end];
            end += 1;
        }
        blocks.push((start, end));
        start = end;
    }
    for &(a, b) in &blocks {
        out.push('\n');
        if blocks.len() > 1 {
            let _ = writeln!(out, "columns [{}] to [{}] of {g}:", a + 1, b);
        }
        let mut header = format!("{:<label_width$}", "from \\ to");
        for (c, w) in col_width.iter().enumerate().take(b).skip(a) {
            let _ = write!(header, "  {:<w$}", format!("[{}]", c + 1));
        }
        out.push_str(header.trim_end());
        out.push('\n');
        for (r, label) in row_labels.iter().enumerate() {
            let mut line = format!("{label:<label_width$}");
            for (c, w) in col_width.iter().enumerate().take(b).skip(a) {
                let _ = write!(line, "  {:<w$}", cells[r][c]);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    let named: Vec<(usize, &Group)> = groups
        .iter()
        .enumerate()
        .filter(|(_, gr)| gr.members.len() > 1 || matrix.endpoints[gr.members[0]].name != gr.label)
        .collect();
    if !named.is_empty() {
        out.push_str(
            "\nrows and columns that stand for pods (a merged row: pods that behave exactly alike):\n",
        );
        for (i, gr) in named {
            let mut names: Vec<&str> =
                gr.members.iter().take(MAX_MEMBERS).map(|&m| matrix.endpoints[m].name.as_str()).collect();
            let more = format!("and {} more", gr.members.len().saturating_sub(MAX_MEMBERS));
            if gr.members.len() > MAX_MEMBERS {
                names.push(&more);
            }
            let _ = writeln!(out, "  [{}] {}", i + 1, names.join(", "));
        }
    }
    out
}

/// A cell: `all`, `-`, the allowed ports, or `all but ...` when that is shorter.
fn cell(matrix: &Matrix, src: usize, dst: usize) -> String {
    let allowed: Vec<bool> = (0..matrix.probes.len()).map(|k| matrix.is_allowed(src, dst, k)).collect();
    let yes = allowed.iter().filter(|a| **a).count();
    if yes == allowed.len() {
        return "all".to_owned();
    }
    if yes == 0 {
        return "-".to_owned();
    }
    let list = |want: bool| {
        matrix
            .probes
            .iter()
            .zip(&allowed)
            .filter(|(_, a)| **a == want)
            .map(|(pr, _)| short(pr))
            .collect::<Vec<_>>()
            .join(",")
    };
    let plain = list(true);
    let but = format!("all but {}", list(false));
    if but.len() < plain.len() { but } else { plain }
}

fn short(probe: &Probe) -> String {
    let port = if probe.other { "other".to_owned() } else { probe.port.to_string() };
    match probe.protocol {
        Protocol::Tcp => port,
        Protocol::Udp => format!("{port}/udp"),
        Protocol::Sctp => format!("{port}/sctp"),
    }
}

fn shorten(label: &str) -> String {
    let chars: Vec<char> = label.chars().collect();
    if chars.len() <= MAX_LABEL {
        return label.to_owned();
    }
    let keep = (MAX_LABEL - 1) / 2;
    let head: String = chars[..keep].iter().collect();
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceFile;
    use netc_ir::{Namespace, Pod};
    use std::collections::BTreeMap;

    fn cluster(replicas: usize) -> Inventory {
        let pod = |name: String, app: &str, i: usize| Pod {
            namespace: "shop".into(),
            name,
            labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
            ips: vec![format!("10.0.0.{}", i + 1).parse().expect("ip")],
            ports: vec![],
            node: None,
            host_interface: None,
            host_network: false,
        };
        let mut pods = Vec::new();
        for (k, app) in ["api", "db", "web"].iter().enumerate() {
            for r in 0..replicas {
                pods.push(pod(format!("{app}-{r}"), app, k * 50 + r));
            }
        }
        Inventory {
            namespaces: vec![Namespace { name: "shop".into(), labels: BTreeMap::new() }],
            pods,
            ..Inventory::default()
        }
    }

    #[test]
    fn replicas_merge_and_wide_tables_wrap() {
        let sources =
            [SourceFile::new("t.np", "namespace shop {\n  web -> api:8080\n  api -> db:[5432, 9187]\n}\n")];
        let ir = crate::compile(&sources).ir.expect("compiles");
        let inv = cluster(3);
        let m = Matrix::compute(&ir, &inv, &Matrix::default_probes(&ir, &inv));
        let text = render_table(&m, &inv, &[&ir], 120);
        assert!(text.contains("[1] shop/api (3 pods)"), "{text}");
        assert!(text.contains("  [1] shop/api-0, shop/api-1, shop/api-2\n"), "{text}");
        let api_row = text.lines().find(|l| l.starts_with("[1] shop/api")).expect("api row");
        let cells: Vec<&str> = api_row.split("  ").filter(|c| !c.is_empty()).map(str::trim).collect();
        assert_eq!(cells, ["[1] shop/api (3 pods)", "-", "5432,9187", "all"], "api only lets web in");
        let web_row = text.lines().find(|l| l.starts_with("[3] shop/web")).expect("web row");
        assert_eq!(web_row.split_whitespace().skip(4).collect::<Vec<_>>(), ["8080", "-", "all"]);
        // Narrow: columns wrap into blocks, every line fits.
        let narrow = render_table(&m, &inv, &[&ir], 40);
        assert!(narrow.contains("columns [1] to ["), "{narrow}");
        let table_lines = narrow.lines().filter(|l| l.starts_with('[') || l.starts_with("from"));
        assert!(table_lines.clone().all(|l| l.chars().count() <= 40), "{narrow}");
        assert!(shorten(&"x".repeat(100)).chars().count() <= MAX_LABEL);
    }
}
