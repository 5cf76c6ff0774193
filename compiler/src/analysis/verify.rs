//! `netc build --verify`: judge the YAML about to be written with the independent NetworkPolicy
//! evaluator ([`super::k8s_eval`]) and the IR with the reference evaluator ([`netc_ir::eval`]) on
//! one cluster, flow by flow and door by door, and report the first difference.
//!
//! The flows are every ordered pair of the cluster's endpoints (pods and external addresses, but
//! not two addresses) on every default probe of the matrix ([`Matrix::default_probes`]: exact,
//! every port of TCP, UDP and SCTP is judged like one of them), over every address family the
//! pair can use ([`Flow::families`]: a dual-stack pair is judged on IPv4 and IPv6). Pods that
//! both evaluators cannot tell apart (same namespace, labels, named ports and hostNetwork flag,
//! address families, and inside the same ipBlocks per family) are judged once, as a class,
//! for all of them: work grows as classes² × probes (replicas cost nothing), and the flows
//! reported are all the pairs the classes stand for.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netc_ir::eval::{DoorVerdict, Endpoint, Evaluator, Family, Flow};
use netc_ir::{Inventory, Ir, Peer};

use super::k8s_eval::{K8sDoorVerdict, K8sEvaluator, K8sPolicyError};
use super::matrix::{Matrix, Probe};
use crate::yaml::{self, ParseError};

/// The two evaluators agree, or the first flow on which they do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every flow got the same verdict at both doors.
    Agree {
        /// How many flows were judged.
        flows: usize,
        /// How many endpoints (pods and addresses) the cluster has.
        endpoints: usize,
        /// How many probes (protocol and port) each pair was tried on.
        probes: usize,
    },
    /// The first flow judged differently.
    Differ(Box<Mismatch>),
}

/// One flow the generated YAML and the IR judge differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `namespace/pod` or an address.
    pub src: String,
    /// `namespace/pod` or an address.
    pub dst: String,
    /// The protocol and port.
    pub probe: Probe,
    /// The address family of the flow (a dual-stack pair is judged on each).
    pub family: Family,
    /// What the IR evaluator says, door by door.
    pub ir: String,
    /// What the NetworkPolicy evaluator says of the YAML, door by door.
    pub yaml: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "first differing flow: {} -> {} {}/{} over {}",
            self.src, self.dst, self.probe.protocol, self.probe.port, self.family
        )?;
        writeln!(f, "  IR (netc's meaning):       {}", self.ir)?;
        write!(f, "  generated NetworkPolicies: {}", self.yaml)
    }
}

/// Why the YAML could not be judged at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The YAML does not parse back into NetworkPolicy objects.
    Parse(ParseError),
    /// An object the API server would refuse.
    Policy(K8sPolicyError),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Parse(e) => write!(f, "the generated YAML does not read back: {e}"),
            VerifyError::Policy(e) => write!(f, "the generated YAML would be refused: {e}"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Judge the YAML `documents` (each a YAML stream, as written to stdout or to the files of an
/// output directory) against `ir` on `inventory`.
///
/// # Errors
/// [`VerifyError`] when the YAML does not parse back or holds an object the API server would
/// refuse.
pub fn verify(ir: &Ir, documents: &[&str], inventory: &Inventory) -> Result<Verification, VerifyError> {
    let mut policies = Vec::new();
    for text in documents {
        policies.extend(yaml::parse_network_policies(text).map_err(VerifyError::Parse)?);
    }
    let k8s = K8sEvaluator::new(&policies, inventory).map_err(VerifyError::Policy)?;
    let reference = Evaluator::new(ir, inventory);
    let probes = Matrix::default_probes(ir, inventory);
    let classes = classes(ir, &policies, inventory);
    let endpoints = inventory.pods.len() + inventory.externals.len();
    // Each source class on its own, on all cores; the first difference in order is the one told.
    let judge_from = |a: usize| -> Result<usize, Box<Mismatch>> {
        let src_class = &classes[a];
        let mut flows = 0;
        for (b, dst_class) in classes.iter().enumerate() {
            if src_class.external && dst_class.external {
                continue;
            }
            // Every family the pair can use: a dual-stack pair is two sets of flows.
            let families = Flow::families(&src_class.first, &dst_class.first);
            flows += src_class.members * dst_class.members * probes.len() * families.len();
            // A class to itself: a pod to itself, and to another pod of its class.
            let mut pairs = vec![(src_class.first, dst_class.first)];
            if a == b
                && let Some(other) = dst_class.second
            {
                pairs.push((src_class.first, other));
            }
            for (src, dst) in pairs {
                for (probe, &family) in probes.iter().flat_map(|p| families.iter().map(move |f| (p, f))) {
                    let flow = Flow { src, dst, protocol: probe.protocol, port: probe.port, family };
                    let want = reference.evaluate(&flow);
                    let got = k8s.evaluate(&flow);
                    if want.allowed != got.allowed
                        || want.egress.permits() != got.egress.permits()
                        || want.ingress.permits() != got.ingress.permits()
                    {
                        return Err(Box::new(Mismatch {
                            src: src.to_string(),
                            dst: dst.to_string(),
                            probe: *probe,
                            family,
                            ir: format!(
                                "{} (egress {}, ingress {})",
                                verdict(want.allowed),
                                ir_door(&want.egress, ir),
                                ir_door(&want.ingress, ir)
                            ),
                            yaml: format!(
                                "{} (egress {}, ingress {})",
                                verdict(got.allowed),
                                k8s_door(&got.egress, &policies),
                                k8s_door(&got.ingress, &policies)
                            ),
                        }));
                    }
                }
            }
        }
        Ok(flows)
    };
    let mut flows = 0;
    for judged in crate::par::map_in_order((0..classes.len()).collect(), 16, judge_from) {
        match judged {
            Ok(n) => flows += n,
            Err(mismatch) => return Ok(Verification::Differ(mismatch)),
        }
    }
    Ok(Verification::Agree { flows, endpoints, probes: probes.len() })
}

/// Endpoints both evaluators judge alike, with a member or two to judge them by.
#[derive(Debug)]
struct Class<'a> {
    first: Endpoint<'a>,
    /// Another member, to judge a flow between two pods of the class.
    second: Option<Endpoint<'a>>,
    members: usize,
    external: bool,
}

/// The inventory's endpoints in classes, in inventory order: each external address its own; pods
/// together when the evaluators cannot tell them apart. What they read of a pod: its namespace,
/// labels, named ports (as a destination) and hostNetwork flag, and (for ipBlocks) whether any of
/// its addresses is inside each block of the IR and of the policies. A block that does not parse
/// puts every pod in a class of its own: that is never wrong, only slower.
fn classes<'a>(ir: &Ir, policies: &[NetworkPolicy], inventory: &'a Inventory) -> Vec<Class<'a>> {
    let blocks = ip_blocks(ir, policies);
    let mut out: Vec<Class<'a>> = Vec::new();
    let mut index: HashMap<(&str, &_, &_, bool, Vec<bool>), usize> = HashMap::new();
    for pod in &inventory.pods {
        let Some(blocks) = &blocks else {
            out.push(Class { first: Endpoint::Pod(pod), second: None, members: 1, external: false });
            continue;
        };
        // Per family (a flow matches the pod by its address of the flow's family), and which
        // families the pod has at all (they decide the families of its flows).
        let inside: Vec<bool> = Family::BOTH
            .iter()
            .map(|f| pod.ips.iter().any(|ip| Family::of(*ip) == *f))
            .chain(blocks.iter().flat_map(|(cidr, except)| {
                Family::BOTH.map(|f| {
                    pod.ips.iter().filter(|ip| Family::of(**ip) == f).any(|ip| in_block(cidr, except, *ip))
                })
            }))
            .collect();
        let key = (pod.namespace.as_str(), &pod.labels, &pod.ports, pod.host_network, inside);
        match index.get(&key) {
            Some(c) => {
                let class = &mut out[*c];
                class.members += 1;
                class.second.get_or_insert(Endpoint::Pod(pod));
            }
            None => {
                index.insert(key, out.len());
                out.push(Class { first: Endpoint::Pod(pod), second: None, members: 1, external: false });
            }
        }
    }
    out.extend(inventory.externals.iter().map(|e| Class {
        first: Endpoint::External(e.address),
        second: None,
        members: 1,
        external: true,
    }));
    out
}

fn in_block(cidr: &IpNet, except: &[IpNet], ip: IpAddr) -> bool {
    cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
}

/// Every ipBlock (CIDR and excepts) of the IR's rules and of the policies; `None` when one of
/// the policies' does not parse.
fn ip_blocks(ir: &Ir, policies: &[NetworkPolicy]) -> Option<Vec<(IpNet, Vec<IpNet>)>> {
    let mut blocks: Vec<(IpNet, Vec<IpNet>)> = Vec::new();
    for (_, _, rule) in ir.rules() {
        for peer in &rule.peers {
            if let Peer::IpBlock { cidr, except } = peer {
                blocks.push((*cidr, except.clone()));
            }
        }
    }
    for spec in policies.iter().filter_map(|p| p.spec.as_ref()) {
        let ingress = spec.ingress.iter().flatten().flat_map(|r| r.from.iter().flatten());
        let egress = spec.egress.iter().flatten().flat_map(|r| r.to.iter().flatten());
        for block in ingress.chain(egress).filter_map(|peer| peer.ip_block.as_ref()) {
            let cidr: IpNet = block.cidr.parse().ok()?;
            let except =
                block.except.iter().flatten().map(|e| e.parse().ok()).collect::<Option<Vec<IpNet>>>()?;
            blocks.push((cidr, except));
        }
    }
    blocks.sort();
    blocks.dedup();
    Some(blocks)
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allowed" } else { "denied" }
}

fn ir_door(door: &DoorVerdict, ir: &Ir) -> String {
    match door {
        DoorVerdict::NotApplicable => "n/a".to_owned(),
        DoorVerdict::Open => "open".to_owned(),
        DoorVerdict::Allowed { rules } => {
            let ids: Vec<String> = rules
                .iter()
                .filter_map(|r| {
                    r.resolve(ir).map(|(p, rule)| format!("{}/{} rule {}", p.namespace, p.name, rule.id))
                })
                .collect();
            format!("allowed by {}", ids.join(", "))
        }
        DoorVerdict::Denied { guarded_by } => {
            let names: Vec<String> = guarded_by
                .iter()
                .filter_map(|p| p.resolve(ir).map(|p| format!("{}/{}", p.namespace, p.name)))
                .collect();
            format!("denied, guarded by {}", names.join(", "))
        }
        DoorVerdict::FromOwnNode { .. } => "from the pod's own node (always let in)".to_owned(),
    }
}

fn k8s_door(door: &K8sDoorVerdict, policies: &[k8s_openapi::api::networking::v1::NetworkPolicy]) -> String {
    let name = |i: usize| {
        policies.get(i).map_or_else(
            || format!("#{i}"),
            |p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or("default"),
                    p.metadata.name.as_deref().unwrap_or("?")
                )
            },
        )
    };
    match door {
        K8sDoorVerdict::NotApplicable => "n/a".to_owned(),
        K8sDoorVerdict::Open => "open".to_owned(),
        K8sDoorVerdict::Allowed { rules } => {
            let rules: Vec<String> =
                rules.iter().map(|r| format!("{} {}[{}]", name(r.policy), r.direction, r.rule)).collect();
            format!("allowed by {}", rules.join(", "))
        }
        K8sDoorVerdict::Denied { guarded_by } => {
            let names: Vec<String> = guarded_by.iter().map(|&i| name(i)).collect();
            format!("denied, guarded by {}", names.join(", "))
        }
        K8sDoorVerdict::FromOwnNode { .. } => "from the pod's own node (always let in)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::synth::synthesize;
    use crate::{SourceFile, codegen};

    fn ir(text: &str) -> Ir {
        let out = crate::compile(&[SourceFile::new("v.np", text)]);
        out.ir.unwrap_or_else(|| panic!("compiles: {:?}", out.diagnostics))
    }

    #[test]
    fn generated_yaml_agrees_with_the_ir() {
        let ir = ir(
            "namespace shop {\n  frontend -> backend:8080\n  backend egress guarded\n  backend -> db:5432, dns\n  \
                     {team=ops}/* -> backend:9090\n  backend -> 203.0.113.0/24 except 203.0.113.8/29:443\n}\nhermit isolated\n",
        );
        let inventory = synthesize(&[&ir]);
        let yaml = yaml::render_stream(&codegen::network_policies(&ir), &ir.sources);
        let outcome = verify(&ir, &[&yaml], &inventory).expect("judgeable");
        let Verification::Agree { flows, endpoints, probes } = outcome else { panic!("{outcome:?}") };
        let externals = inventory.externals.len();
        assert_eq!(
            flows,
            (endpoints * endpoints - externals * externals) * probes,
            "every pair but address to address"
        );
        assert!(flows > 100);
    }

    #[test]
    fn pods_the_evaluators_cannot_tell_apart_are_judged_once_as_a_class() {
        let ir = ir("frontend -> backend:http\n10.1.0.0/24 -> backend:9090\n");
        let mut inventory = synthesize(&[&ir]);
        // Replicas: backend-2 is backend again; backend-3 too but inside the block; backend-4
        // names its port otherwise.
        let backend = inventory.pod("default", "backend").expect("backend").clone();
        let copy = |name: &str, ip: &str| {
            let mut p = backend.clone();
            p.name = name.into();
            p.ips = vec![ip.parse().expect("ip")];
            p
        };
        inventory.pods.push(copy("backend-2", "10.244.9.2"));
        inventory.pods.push(copy("backend-3", "10.1.0.7"));
        let mut other_port = copy("backend-4", "10.244.9.4");
        other_port.ports[0].port += 1;
        inventory.pods.push(other_port);
        let yaml = yaml::render_stream(&codegen::network_policies(&ir), &ir.sources);
        let policies = yaml::parse_network_policies(&yaml).expect("reads back");
        let classes = classes(&ir, &policies, &inventory);
        let class_of = |name: &str| {
            classes
                .iter()
                .position(|c| {
                    [Some(c.first), c.second]
                        .into_iter()
                        .flatten()
                        .any(|e| e.to_string() == format!("default/{name}"))
                })
                .unwrap_or_else(|| panic!("{name} represents its class or is its second member"))
        };
        assert_eq!(class_of("backend"), class_of("backend-2"));
        assert_eq!(classes[class_of("backend")].members, 2);
        assert_ne!(
            classes.iter().position(|c| c.first.to_string() == "default/backend-3"),
            None,
            "an address inside a block makes its own class"
        );
        assert_ne!(
            classes.iter().position(|c| c.first.to_string() == "default/backend-4"),
            None,
            "another named port makes its own class"
        );
        // And the flows reported are all the pairs.
        let outcome = verify(&ir, &[&yaml], &inventory).expect("judgeable");
        let Verification::Agree { flows, endpoints, probes } = outcome else { panic!("{outcome:?}") };
        let externals = inventory.externals.len();
        assert_eq!(flows, (endpoints * endpoints - externals * externals) * probes);
    }

    #[test]
    fn a_yaml_that_says_something_else_is_caught_with_the_first_flow() {
        let ir = ir("frontend -> backend:8080\n");
        let inventory = synthesize(&[&ir]);
        let mut policies = codegen::network_policies(&ir);
        // Tamper: the YAML lets backend in on 8081 instead.
        let yaml = yaml::render_stream(&policies, &ir.sources).replace("port: 8080", "port: 8081");
        let outcome = verify(&ir, &[&yaml], &inventory).expect("judgeable");
        let Verification::Differ(m) = outcome else { panic!("expected a mismatch: {outcome:?}") };
        assert_eq!(
            (m.src.as_str(), m.dst.as_str(), m.probe.port),
            ("default/frontend", "default/backend", 8080)
        );
        assert!(m.ir.starts_with("allowed") && m.yaml.starts_with("denied"), "{m}");
        // An object the API server would refuse is an error, not a verdict.
        policies.clear();
        let bad = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podSelector: {}\n  \
                   ingress: [{from: [{ipBlock: {cidr: nonsense}}]}]\n";
        assert!(matches!(verify(&ir, &[bad], &inventory), Err(VerifyError::Policy(_))));
    }
}
