//! The ipBlock-covers-pods warning (DESIGN.md, semantic corner 6).
//!
//! Whether an `ipBlock` matches pod addresses is left to each implementation by Kubernetes: netc
//! (like Calico and Antrea, and the upstream e2e tests) matches pods by address, Cilium does not.
//! A rule whose address block covers pods of the cluster therefore means different things on
//! different clusters, so every analysis given a cluster warns about it, naming the rule, its
//! source line and the pods.

use std::fmt::Write as _;

use ipnet::IpNet;
use netc_ir::eval::{RuleRef, ip_block_matches};
use netc_ir::{Direction, Inventory, Ir, Peer};

use super::explain::quote;
use crate::SourceFile;

/// How many pods a warning names before it says "and N more".
const NAMED_PODS: usize = 5;

/// An address block of a rule that covers pods of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoveredPods {
    /// The rule.
    pub rule: RuleRef,
    /// The block.
    pub cidr: IpNet,
    /// Its exceptions.
    pub except: Vec<IpNet>,
    /// `namespace/pod` of every pod with an address in the block, in inventory order.
    pub pods: Vec<String>,
}

/// Every (rule, ipBlock) of `ir` that covers at least one pod address of `inventory`.
#[must_use]
pub fn blocks_covering_pods(ir: &Ir, inventory: &Inventory) -> Vec<CoveredPods> {
    let mut found = Vec::new();
    for (p, policy) in ir.policies.iter().enumerate() {
        for direction in Direction::BOTH {
            for (r, rule) in policy.door(direction).rules.iter().enumerate() {
                for peer in &rule.peers {
                    let Peer::IpBlock { cidr, except } = peer else { continue };
                    let pods: Vec<String> = inventory
                        .pods
                        .iter()
                        .filter(|pod| pod.ips.iter().any(|ip| ip_block_matches(cidr, except, *ip)))
                        .map(|pod| format!("{}/{}", pod.namespace, pod.name))
                        .collect();
                    if !pods.is_empty() {
                        found.push(CoveredPods {
                            rule: RuleRef { policy: p, direction, rule: r },
                            cidr: *cidr,
                            except: except.clone(),
                            pods,
                        });
                    }
                }
            }
        }
    }
    found
}

/// The warnings as netc prints them on stderr, one block each, with the rule's source line.
#[must_use]
pub fn render_warnings(found: &[CoveredPods], ir: &Ir, sources: &[SourceFile]) -> String {
    let mut out = String::new();
    for c in found {
        let Some((policy, rule)) = c.rule.resolve(ir) else { continue };
        let block = if c.except.is_empty() {
            c.cidr.to_string()
        } else {
            let except: Vec<String> = c.except.iter().map(ToString::to_string).collect();
            format!("{} except ({})", c.cidr, except.join(", "))
        };
        let mut pods: Vec<&str> = c.pods.iter().take(NAMED_PODS).map(String::as_str).collect();
        let more = c.pods.len().saturating_sub(NAMED_PODS);
        let more_text = format!("and {more} more");
        if more > 0 {
            pods.push(&more_text);
        }
        let count = if c.pods.len() == 1 { "1 pod".to_owned() } else { format!("{} pods", c.pods.len()) };
        let _ = writeln!(
            out,
            "warning: address block {block} in {} rule `{}` of {}/{} covers {count} of the cluster: {}",
            c.rule.direction,
            rule.id,
            policy.namespace,
            policy.name,
            pods.join(", ")
        );
        out.push_str(&quote(&rule.span, sources, "  "));
        out.push('\n');
        out.push_str(
            "  = note: netc matches address blocks against pod addresses too (as Calico and Antrea do); \
             Cilium does not, so on Cilium these pods would not match\n",
        );
        out.push_str(
            "  = help: name these pods with a selector instead, or carve their addresses out with `except`\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_block_covering_pods_is_found_and_named_with_its_line() {
        let text =
            "namespace shop {\n  10.0.0.0/8 except 10.9.0.0/16 -> backend:80\n  web -> backend:81\n}\n";
        let sources = [SourceFile::new("b.np", text)];
        let ir = crate::compile(&sources).ir.expect("compiles");
        let pod = |name: &str, ip: &str| netc_ir::Pod {
            namespace: "shop".into(),
            name: name.into(),
            labels: BTreeMap::new(),
            ips: vec![ip.parse().expect("ip")],
            ports: vec![],
            node: None,
            host_interface: None,
            host_network: false,
        };
        let inventory = Inventory {
            pods: vec![pod("a", "10.1.0.1"), pod("b", "10.9.0.1"), pod("c", "192.168.0.1")],
            ..Inventory::default()
        };
        let found = blocks_covering_pods(&ir, &inventory);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].pods, ["shop/a"], "b is excepted, c outside");
        let text = render_warnings(&found, &ir, &sources);
        assert!(
            text.starts_with("warning: address block 10.0.0.0/8 except (10.9.0.0/16) in ingress rule `r"),
            "{text}"
        );
        assert!(text.contains("covers 1 pod of the cluster: shop/a\n"), "{text}");
        assert!(text.contains("b.np:2:3"), "{text}");
        assert!(text.contains("2 |   10.0.0.0/8 except 10.9.0.0/16 -> backend:80"), "{text}");
    }
}
