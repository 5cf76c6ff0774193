//! The selects-nothing warning (issue 9, item 8): given a cluster, every selector of the program
//! (a policy's pods, a rule's pod peer) that matches no pod of it is named, with its source line.
//!
//! A misspelt label, or a name that means `app=<name>` while the pods carry another label,
//! compiles to a policy that guards nobody or a rule that lets nobody in: NetworkPolicy accepts
//! both without a word. Against a real cluster the mistake shows, so every analysis given a
//! cluster (`--cluster`) says so on stderr, once per distinct selector, at its first use.

use std::collections::BTreeSet;
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

/// Every policy selector and pod peer of `ir` that matches no pod of `inventory`, in IR order,
/// each distinct (namespace scope, pod selector) once.
#[must_use]
pub fn selectors_matching_nothing(ir: &Ir, inventory: &Inventory) -> Vec<SelectsNothing> {
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for policy in &ir.policies {
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
}
