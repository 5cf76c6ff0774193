//! Shared helpers of the runtime tests: building IR and inventories in a line, and a harness
//! that runs the datapath on crafted packets with BPF_PROG_TEST_RUN.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::BTreeMap;
use std::net::IpAddr;

use netc_ir::{
    Door, DoorState, Inventory, Ir, LabelSelector, NamedPort, Namespace, Peer, Pod, Policy, Port, PortValue,
    Protocol, Rule, Service, ServicePort, Span,
};
use netc_runtime::abi;
use netc_runtime::datapath::Datapath;
use netc_runtime::packet::Packet;
use netc_runtime::plan::{Plan, PlanOptions};

/// xorshift64*: small, deterministic, good enough to pick test cases.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("small")).expect("small")
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// tc verdicts as the test run returns them.
pub const PASS: i32 = 0;
pub const DROP: i32 = 2;

/// Whether the tests that need root (BPF, netns) can run; prints why not.
pub fn can_run_as_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        true
    } else {
        eprintln!("skipping {test}: needs root (BPF_PROG_TEST_RUN, map creation, netns)");
        false
    }
}

pub fn span(line: u32) -> Span {
    Span { file: "test.np".into(), line, column: 1, start: 0, end: 1 }
}

pub fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector::labels(pairs.iter().copied())
}

/// Pods with label app=`app` in the policy's namespace.
pub fn app(a: &str) -> Peer {
    Peer::Pods { namespaces: None, pods: Some(sel(&[("app", a)])) }
}

pub fn block(cidr: &str, except: &[&str]) -> Peer {
    Peer::IpBlock {
        cidr: cidr.parse().expect("test cidr"),
        except: except.iter().map(|e| e.parse().expect("test except")).collect(),
    }
}

pub fn port(protocol: Protocol, number: u16) -> Port {
    Port { protocol, port: Some(PortValue::Number(number)), end_port: None }
}

pub fn tcp(number: u16) -> Port {
    port(Protocol::Tcp, number)
}

pub fn range(protocol: Protocol, lo: u16, hi: u16) -> Port {
    Port { protocol, port: Some(PortValue::Number(lo)), end_port: Some(hi) }
}

pub fn named(protocol: Protocol, name: &str) -> Port {
    Port { protocol, port: Some(PortValue::Name(name.into())), end_port: None }
}

pub fn rule(id: &str, line: u32, peers: Vec<Peer>, ports: Vec<Port>) -> Rule {
    Rule { id: id.into(), peers, ports, span: span(line) }
}

pub fn guarded(rules: Vec<Rule>) -> Door {
    Door { state: DoorState::Guarded, guarded_by: vec![span(1)], rules }
}

pub fn open() -> Door {
    Door::open()
}

/// The policy for pods app=`app` in `ns`.
pub fn policy(ns: &str, app: &str, ingress: Door, egress: Door) -> Policy {
    Policy {
        name: app.into(),
        namespace: ns.into(),
        workload: app.into(),
        selector: sel(&[("app", app)]),
        doc: None,
        ingress,
        egress,
        span: span(1),
    }
}

pub fn ir(policies: Vec<Policy>) -> Ir {
    let ir = Ir { policies, ..Ir::empty() };
    ir.validate().expect("test IR is valid");
    ir
}

/// A pod app=`app` named `name` with the given addresses.
pub fn pod(ns: &str, name: &str, app: &str, ips: &[&str]) -> Pod {
    Pod {
        namespace: ns.into(),
        name: name.into(),
        labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
        ips: ips.iter().map(|i| i.parse().expect("test ip")).collect(),
        ports: vec![],
        node: None,
        host_interface: None,
        host_network: false,
    }
}

pub fn with_port(mut pod: Pod, name: &str, protocol: Protocol, number: u16) -> Pod {
    pod.ports.push(NamedPort { name: name.into(), port: number, protocol });
    pod
}

pub fn inventory(namespaces: &[(&str, &[(&str, &str)])], mut pods: Vec<Pod>) -> Inventory {
    let mut namespaces: Vec<Namespace> = namespaces
        .iter()
        .map(|(name, labels)| {
            let mut l: BTreeMap<String, String> =
                labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            l.insert(netc_ir::inventory::NAMESPACE_NAME_LABEL.into(), (*name).to_owned());
            Namespace { name: (*name).to_owned(), labels: l }
        })
        .collect();
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Inventory { namespaces, pods, ..Inventory::default() }
}

/// A Service `ns/name` on `addresses`: TCP `port` to the backends' `target_port`, with a node port
/// when given.
pub fn service(
    ns: &str,
    name: &str,
    addresses: &[&str],
    port: u16,
    target_port: u16,
    node_port: Option<u16>,
) -> Service {
    Service {
        namespace: ns.into(),
        name: name.into(),
        addresses: addresses.iter().map(|a| a.parse().expect("test ip")).collect(),
        ports: vec![ServicePort {
            protocol: Protocol::Tcp,
            port,
            target_port: PortValue::Number(target_port),
            node_port,
        }],
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

/// Fake ifindexes for endpoints: never real devices, only so that `apply` writes their entries;
/// packets come in on ifindex 1 (loopback), which [`Harness`] binds to the endpoint under test.
pub fn fake_ifindex(endpoint: u32) -> u32 {
    1_000_000 + endpoint
}

/// A loaded, unpinned datapath with a plan applied.
pub struct Harness {
    pub datapath: Datapath,
    pub plan: Plan,
}

impl Harness {
    pub fn new(ir: &Ir, inventory: &Inventory, audit: bool) -> Harness {
        Harness::with_options(ir, inventory, audit, false)
    }

    /// [`Harness::new`] with the inventory's Services judged after the translation (as netcd
    /// with `--uplink`).
    pub fn with_services(ir: &Ir, inventory: &Inventory, audit: bool) -> Harness {
        Harness::with_options(ir, inventory, audit, true)
    }

    fn with_options(ir: &Ir, inventory: &Inventory, audit: bool, services: bool) -> Harness {
        let mut datapath = Datapath::load(None).expect("load the datapath (root, BTF)");
        let plan = Plan::build(ir, inventory, &PlanOptions { node: None, audit, services });
        let interfaces = plan.endpoints.iter().map(|e| (e.id, fake_ifindex(e.id))).collect();
        datapath.apply(&plan, &interfaces, true).expect("apply the plan");
        Harness { datapath, plan }
    }

    pub fn reapply(&mut self, ir: &Ir, inventory: &Inventory, audit: bool) {
        self.plan = Plan::build(ir, inventory, &PlanOptions { node: None, audit, services: false });
        let interfaces = self.plan.endpoints.iter().map(|e| (e.id, fake_ifindex(e.id))).collect();
        self.datapath.apply(&self.plan, &interfaces, true).expect("apply the plan");
    }

    pub fn endpoint(&self, name: &str) -> u32 {
        self.plan.endpoints.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("no endpoint {name}")).id
    }

    /// The verdict of `pod`'s egress door (its veth's tc ingress) on a frame.
    pub fn egress_frame(&mut self, pod: &str, frame: &[u8]) -> i32 {
        let id = self.endpoint(pod);
        self.datapath.bind(&self.plan, id, 1).expect("bind");
        self.datapath.test_run(abi::PROG_FROM_POD, frame, 1).expect("test run").0
    }

    /// The verdict of `pod`'s ingress door (its veth's tc egress) on a frame.
    pub fn ingress_frame(&mut self, pod: &str, frame: &[u8]) -> i32 {
        let id = self.endpoint(pod);
        self.datapath.bind(&self.plan, id, 1).expect("bind");
        self.datapath.test_run(abi::PROG_TO_POD, frame, 1).expect("test run").0
    }

    /// The verdict of `pod`'s ingress door on a packet its node made (a kubelet probe).
    pub fn node_ingress(&mut self, pod: &str, p: Packet) -> i32 {
        self.node_ingress_frame(pod, &p.frame())
    }

    /// [`Harness::node_ingress`] on a frame.
    pub fn node_ingress_frame(&mut self, pod: &str, frame: &[u8]) -> i32 {
        let id = self.endpoint(pod);
        self.datapath.bind(&self.plan, id, 1).expect("bind");
        self.datapath.test_run_from_node(abi::PROG_TO_POD, frame, 1).expect("test run").0
    }

    pub fn egress(&mut self, pod: &str, p: Packet) -> i32 {
        self.egress_frame(pod, &p.frame())
    }

    pub fn ingress(&mut self, pod: &str, p: Packet) -> i32 {
        self.ingress_frame(pod, &p.frame())
    }

    /// A packet leaving `pod` (its veth's tc ingress, its egress door): the verdict and the mark
    /// the packet leaves with (the Service mark on a Service call).
    pub fn egress_marked(&mut self, pod: &str, frame: &[u8]) -> (i32, u32) {
        let id = self.endpoint(pod);
        self.datapath.bind(&self.plan, id, 1).expect("bind");
        self.datapath.test_run_marked(abi::PROG_FROM_POD, frame, 1, 0).expect("test run")
    }

    /// A Service call of `client` after kube-proxy translated it to `frame`, at the tc egress of
    /// `backend`'s veth (`Some`: a backend on this node) or of the uplink (`None`): it came in on
    /// the client's veth and carries `mark`. The verdict and the mark it leaves with.
    pub fn translated(&mut self, client: &str, backend: Option<&str>, frame: &[u8], mark: u32) -> (i32, u32) {
        let client = fake_ifindex(self.endpoint(client));
        let program = match backend {
            Some(pod) => {
                let id = self.endpoint(pod);
                self.datapath.bind(&self.plan, id, 1).expect("bind");
                abi::PROG_TO_POD
            }
            None => abi::PROG_UPLINK,
        };
        self.datapath.test_run_marked(program, frame, client, mark).expect("test run")
    }

    /// [`Harness::translated`] at the uplink, the call having come in on ifindex 1, the client's
    /// veth as [`Harness::egress_marked`] and [`Harness::ingress_frame`] run it: the client's
    /// entries at its veth and the judgement after the translation name one interface, as on a
    /// node (what a TCP call's pending entry needs to be found).
    pub fn translated_at_uplink(&mut self, client: &str, frame: &[u8], mark: u32) -> (i32, u32) {
        let id = self.endpoint(client);
        self.datapath.bind(&self.plan, id, 1).expect("bind");
        self.datapath.test_run_marked(abi::PROG_UPLINK, frame, 1, mark).expect("test run")
    }

    /// A Service call from `client` through the datapath as on a node: its egress door, then,
    /// translated by kube-proxy to `translated` (the backend and targetPort), the hook after the
    /// translation (the backend's veth, or the uplink for `None`) and, for a local backend, its
    /// ingress door. The verdict.
    pub fn service_call(
        &mut self,
        client: &str,
        call: Packet,
        backend: Option<&str>,
        translated: Packet,
    ) -> i32 {
        let (verdict, mark) = self.egress_marked(client, &call.frame());
        if verdict != PASS {
            return verdict;
        }
        self.translated(client, backend, &translated.frame(), mark).0
    }

    /// Pod to pod on one node: the sender's egress, then (if it passed) the receiver's ingress.
    pub fn flow(&mut self, from: &str, to: &str, p: Packet) -> i32 {
        match self.egress(from, p) {
            PASS => self.ingress(to, p),
            other => other,
        }
    }
}
pub mod netns;
