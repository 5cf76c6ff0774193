//! The selects-nothing warning (issue 9, item 8): given a cluster, every selector of the program
//! (a policy's pods, a rule's pod peer) that matches no pod of it is named, with its source line.
//!
//! A misspelt label, or a name that means `app=<name>` while the pods carry another label,
//! compiles to a policy that guards nobody or a rule that lets nobody in: NetworkPolicy accepts
//! both without a word. Against a real cluster the mistake shows, so every analysis given a
//! cluster (`--cluster`) says so on stderr, once per distinct selector, at its first use.
//!
//! A cluster that lacks a namespace the program uses (an export of one namespace, a file left
//! out) would make every selector there match nothing: that is one warning listing the missing
//! namespaces ([`missing_namespaces`]), and their selectors are not named again one by one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use netc_ir::{Direction, Inventory, Ir, LabelSelector, Peer, Span};

use super::explain::quote;
use crate::SourceFile;

/// A selector of the program that matches no pod of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectsNothing {
    /// What it is, in words: ``pods `app=backend` of namespace `default` (policy `backend`)``.
    pub what: String,
    /// Where it is first used.
    pub span: Span,
}

/// Whether a pod of `inventory` lives in a namespace `namespaces` selects (`None`: `home`) and
/// carries labels `pods` selects (`None`: any).
fn selects_a_pod(
    inventory: &Inventory,
    home: &str,
    namespaces: Option<&LabelSelector>,
    pods: Option<&LabelSelector>,
) -> bool {
    inventory.pods.iter().any(|pod| {
        let in_namespace = match namespaces {
            None => pod.namespace == home,
            Some(selector) => {
                inventory.namespace(&pod.namespace).is_some_and(|ns| selector.matches(&ns.labels))
            }
        };
        in_namespace && pods.is_none_or(|s| s.matches(&pod.labels))
    })
}

/// Whether some namespace of `inventory` is one `namespaces` selects (`None`: `home`).
fn selects_a_namespace(inventory: &Inventory, home: &str, namespaces: Option<&LabelSelector>) -> bool {
    match namespaces {
        None => inventory.namespace(home).is_some(),
        Some(selector) => inventory.namespaces.iter().any(|ns| selector.matches(&ns.labels)),
    }
}

/// Every policy selector and pod peer of `ir` that matches no pod of `inventory`, in IR order,
/// each distinct (namespace scope, pod selector) once. Those whose namespaces the cluster lacks
/// altogether are left to [`missing_namespaces`].
#[must_use]
pub fn selectors_matching_nothing(ir: &Ir, inventory: &Inventory) -> Vec<SelectsNothing> {
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for policy in &ir.policies {
        if !selects_a_namespace(inventory, &policy.namespace, None) {
            continue;
        }
        let key = (policy.namespace.clone(), None, policy.selector.to_string());
        if seen.insert(key) && !selects_a_pod(inventory, &policy.namespace, None, Some(&policy.selector)) {
            found.push(SelectsNothing {
                what: format!(
                    "pods `{}` of namespace `{}` (policy `{}`)",
                    shown(&policy.selector),
                    policy.namespace,
                    policy.name
                ),
                span: policy.span.clone(),
            });
        }
        for direction in Direction::BOTH {
            for rule in &policy.door(direction).rules {
                for peer in &rule.peers {
                    let Peer::Pods { namespaces, pods } = peer else { continue };
                    let scope = namespaces.as_ref().map(ToString::to_string);
                    let key = (
                        policy.namespace.clone(),
                        scope.clone(),
                        pods.as_ref().map(ToString::to_string).unwrap_or_default(),
                    );
                    if !seen.insert(key)
                        || !selects_a_namespace(inventory, &policy.namespace, namespaces.as_ref())
                        || selects_a_pod(inventory, &policy.namespace, namespaces.as_ref(), pods.as_ref())
                    {
                        continue;
                    }
                    let pods_text = pods
                        .as_ref()
                        .map_or_else(|| "every pod".to_owned(), |s| format!("pods `{}`", shown(s)));
                    let where_ = match &scope {
                        None => format!("of namespace `{}`", policy.namespace),
                        Some(s) => format!("of the namespaces `{}`", if s.is_empty() { "*" } else { s }),
                    };
                    found.push(SelectsNothing {
                        what: format!(
                            "{pods_text} {where_} ({direction} rule `{}` of policy `{}`)",
                            rule.id, policy.name
                        ),
                        span: rule.span.clone(),
                    });
                }
            }
        }
    }
    found
}

fn shown(selector: &LabelSelector) -> String {
    let s = selector.to_string();
    if s.is_empty() { "*".to_owned() } else { s }
}

/// The warnings as netc prints them on stderr, one block each, with the source line.
#[must_use]
pub fn render_warnings(found: &[SelectsNothing], sources: &[SourceFile]) -> String {
    let mut out = String::new();
    for f in found {
        let _ = writeln!(out, "warning: {} select no pod of the cluster", f.what);
        let _ = writeln!(out, "{}", quote(&f.span, sources, "  "));
        let _ = writeln!(
            out,
            "  = help: check the labels against the cluster's pods (`kubectl get pods --show-labels`); an undeclared name means the label `app=<name>`"
        );
    }
    out
}

/// The namespaces a program uses that a cluster lacks: by name (where policies are written,
/// peers `shop/...`, `dns`'s `kube-system`) and by labels (`{team=x}/...` that no namespace of the
/// cluster carries), each with its first use in the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MissingNamespaces {
    /// Namespace names, sorted, with their first use.
    pub named: Vec<(String, Span)>,
    /// Namespace selectors by labels, as written, with their first use.
    pub selected: Vec<(String, Span)>,
}

impl MissingNamespaces {
    /// Whether the cluster has every namespace the program uses.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.selected.is_empty()
    }
}

/// The namespaces `ir` uses that `inventory` does not have (see [`MissingNamespaces`]).
#[must_use]
pub fn missing_namespaces(ir: &Ir, inventory: &Inventory) -> MissingNamespaces {
    // First use: the earliest place in the order the sources were given.
    let order = |span: &Span| (ir.sources.iter().position(|f| *f == span.file), span.start);
    let mut named: BTreeMap<String, Span> = BTreeMap::new();
    let mut selected: BTreeMap<String, Span> = BTreeMap::new();
    let note = |map: &mut BTreeMap<String, Span>, key: String, span: &Span| {
        let entry = map.entry(key).or_insert_with(|| span.clone());
        if order(span) < order(entry) {
            *entry = span.clone();
        }
    };
    for policy in &ir.policies {
        if inventory.namespace(&policy.namespace).is_none() {
            note(&mut named, policy.namespace.clone(), &policy.span);
        }
        for direction in Direction::BOTH {
            for rule in &policy.door(direction).rules {
                for peer in &rule.peers {
                    let Peer::Pods { namespaces: Some(selector), .. } = peer else { continue };
                    match selector.as_namespace_name() {
                        Some(name) if inventory.namespace(name).is_none() => {
                            note(&mut named, name.to_owned(), &rule.span);
                        }
                        Some(_) => {}
                        None if !selects_a_namespace(inventory, "", Some(selector)) => {
                            note(&mut selected, selector.to_string(), &rule.span);
                        }
                        None => {}
                    }
                }
            }
        }
    }
    let by_place = |map: BTreeMap<String, Span>| {
        let mut list: Vec<(String, Span)> = map.into_iter().collect();
        list.sort_by(|a, b| order(&a.1).cmp(&order(&b.1)).then_with(|| a.0.cmp(&b.0)));
        list
    };
    MissingNamespaces { named: by_place(named), selected: by_place(selected) }
}

/// The one warning for [`MissingNamespaces`], or nothing when none is missing.
#[must_use]
pub fn render_missing(missing: &MissingNamespaces, cluster: &str) -> String {
    if missing.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let count = missing.named.len() + missing.selected.len();
    let _ = writeln!(
        out,
        "warning: {cluster} lacks {} the program uses; nothing the program says about {} is analysed \
         (no pod is there to match):",
        if count == 1 { "a namespace".to_owned() } else { format!("{count} namespaces") },
        if count == 1 { "its pods" } else { "their pods" },
    );
    for (name, span) in &missing.named {
        let _ = writeln!(
            out,
            "  - namespace `{name}` (first used at {}:{}:{})",
            span.file, span.line, span.column
        );
    }
    for (selector, span) in &missing.selected {
        let _ = writeln!(
            out,
            "  - a namespace labelled `{selector}` (first used at {}:{}:{})",
            span.file, span.line, span.column
        );
    }
    let _ = writeln!(
        out,
        "  = help: export the namespaces with their pods (`kubectl get ns,pods -A -o yaml`), or give every \
         part of the cluster: --cluster a.yaml,b.yaml or --cluster DIR (docs/analysis.md, \"The cluster\")"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_that_match_no_pod_are_named_once_each() {
        let text = "frontend -> backend:80\nfrontend -> backend:443\nloadgenerater -> backend:8080\n";
        let sources = [SourceFile::new("p.np", text)];
        let ir = crate::compile(&sources).ir.expect("compiles");
        let inventory = Inventory::from_yaml(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: fe, namespace: default, labels: {app: frontend}}\nstatus: {podIP: 10.0.0.1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: be, namespace: default, labels: {app: backend}}\nstatus: {podIP: 10.0.0.2}\n",
        )
        .expect("an inventory");
        let found = selectors_matching_nothing(&ir, &inventory);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].what.starts_with("pods `app=loadgenerater` of namespace `default`"), "{found:#?}");
        assert_eq!(found[0].span.line, 3);
        let text = render_warnings(&found, &sources);
        assert!(text.contains("select no pod of the cluster"), "{text}");
        assert!(text.contains("   3 | loadgenerater -> backend:8080"), "{text}");
    }

    #[test]
    fn namespaces_the_cluster_lacks_are_one_warning_and_their_selectors_are_not_named_again() {
        let text = "namespace shop {\n  web -> api:80\n  {team=ops}/* -> api:9090\n  api egress guarded\n  api -> payments/gw:443, dns\n}\n";
        let sources = [SourceFile::new("p.np", text)];
        let ir = crate::compile(&sources).ir.expect("compiles");
        // The cluster of another namespace only.
        let inventory = Inventory::from_yaml(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: other, labels: {app: x}}\nstatus: {podIP: 10.0.0.1}\n",
        )
        .expect("an inventory");
        let missing = missing_namespaces(&ir, &inventory);
        let names: Vec<&str> = missing.named.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["shop", "kube-system", "payments"], "{missing:#?}");
        assert_eq!(missing.selected.len(), 1);
        assert_eq!((missing.selected[0].0.as_str(), missing.selected[0].1.line), ("team=ops", 3));
        assert!(selectors_matching_nothing(&ir, &inventory).is_empty(), "no warning per selector");
        let warning = render_missing(&missing, "the cluster");
        assert_eq!(warning.matches("warning:").count(), 1, "{warning}");
        assert!(warning.starts_with("warning: the cluster lacks 4 namespaces the program uses"), "{warning}");
        assert!(warning.contains("  - namespace `shop` (first used at p.np:2:10)"), "{warning}");
        assert!(
            warning.contains("  - a namespace labelled `team=ops` (first used at p.np:3:3)"),
            "{warning}"
        );
        assert!(warning.contains("--cluster a.yaml,b.yaml"), "{warning}");
        assert!(render_missing(&MissingNamespaces::default(), "x").is_empty());
    }
}
