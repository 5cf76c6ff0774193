//! The four seed examples *mean* the article's four policies, proved by evaluation rather than by
//! comparing YAML.
//!
//! For each pair (`examples/seed/NAME.np`, the article's YAML copied verbatim into
//! `tests/fixtures/article/NAME.yaml`) and every flow of a synthetic cluster
//! (`tests/fixtures/seed-cluster.yaml`: every pod to every pod and external address, over a set of
//! probe ports), three judges must agree:
//!
//! 1. the article's YAML, parsed with [`netc::yaml::parse_network_policies`] and judged by the
//!    independent NetworkPolicy evaluator [`netc::analysis::k8s_eval`];
//! 2. the compiled example's IR, judged by the reference evaluator [`netc_ir::eval`];
//! 3. the YAML netc generates for the example, parsed back and judged by `k8s_eval`;
//! 4. the article's YAML lowered object by object to IR (`netc import --emit ir`, what netcd
//!    enforces for a cluster's own NetworkPolicies), judged by the reference evaluator.
//!
//! They must agree not only on allowed/denied but on each door: open (no policy guards it),
//! guarded and letting the flow through, or guarded and stopping it. That is "same selected pods,
//! same doors, same peers and ports". Each test then asserts some verdicts by hand, so that it
//! cannot pass because every judge says the same wrong thing, and a control test shows that a
//! slightly different program is caught.
//!
//! To add a case: put the YAML under `tests/fixtures/article/`, the netc program under
//! `examples/seed/`, add pods to the cluster fixture if the policy looks at labels it lacks, and
//! write a test that calls [`Case::load`], [`Case::assert_equivalent`] and asserts a few verdicts.

use std::fmt;
use std::path::PathBuf;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use netc::SourceFile;
use netc::analysis::k8s_eval::{K8sDoorVerdict, K8sEvaluator, K8sVerdict};
use netc::{codegen, yaml};
use netc_ir::eval::{DoorVerdict, Endpoint, Evaluator, Flow, Verdict};
use netc_ir::{Inventory, Ir, Protocol};

/// Destination ports every flow is tried on: DNS, web, the database, the named ports of the
/// cluster fixture (`http` 8080, `metrics` 9090 and 9091), and other protocols on the same numbers.
const PROBES: [(Protocol, u16); 11] = [
    (Protocol::Tcp, 53),
    (Protocol::Udp, 53),
    (Protocol::Tcp, 80),
    (Protocol::Tcp, 443),
    (Protocol::Tcp, 5432),
    (Protocol::Tcp, 8080),
    (Protocol::Tcp, 9090),
    (Protocol::Tcp, 9091),
    (Protocol::Udp, 8080),
    (Protocol::Udp, 9090),
    (Protocol::Sctp, 9090),
];

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn read(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn cluster() -> Inventory {
    Inventory::from_yaml(&read("compiler/tests/fixtures/seed-cluster.yaml"))
        .expect("the cluster fixture is valid")
}

/// What one door did with a flow, in terms both evaluators share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// An address outside the cluster: no door.
    External,
    /// No policy selecting the pod guards this door.
    Open,
    /// Guarded, and some rule lets the flow through.
    Passes,
    /// Guarded, and no rule does.
    Stops,
    /// Guarded, and the flow comes from the pod's own node, which always gets in.
    FromOwnNode,
}

impl From<&DoorVerdict> for Door {
    fn from(v: &DoorVerdict) -> Door {
        match v {
            DoorVerdict::NotApplicable => Door::External,
            DoorVerdict::Open => Door::Open,
            DoorVerdict::Allowed { .. } => Door::Passes,
            DoorVerdict::Denied { .. } => Door::Stops,
            DoorVerdict::FromOwnNode { .. } => Door::FromOwnNode,
        }
    }
}

impl From<&K8sDoorVerdict> for Door {
    fn from(v: &K8sDoorVerdict) -> Door {
        match v {
            K8sDoorVerdict::NotApplicable => Door::External,
            K8sDoorVerdict::Open => Door::Open,
            K8sDoorVerdict::Allowed { .. } => Door::Passes,
            K8sDoorVerdict::Denied { .. } => Door::Stops,
            K8sDoorVerdict::FromOwnNode { .. } => Door::FromOwnNode,
        }
    }
}

/// A verdict reduced to what the judges must agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Judgement {
    allowed: bool,
    egress: Door,
    ingress: Door,
}

impl From<&Verdict> for Judgement {
    fn from(v: &Verdict) -> Judgement {
        Judgement { allowed: v.allowed, egress: (&v.egress).into(), ingress: (&v.ingress).into() }
    }
}

impl From<&K8sVerdict> for Judgement {
    fn from(v: &K8sVerdict) -> Judgement {
        Judgement { allowed: v.allowed, egress: (&v.egress).into(), ingress: (&v.ingress).into() }
    }
}

impl fmt::Display for Judgement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        write!(f, "{verdict} (egress {:?}, ingress {:?})", self.egress, self.ingress)
    }
}

/// One seed example beside the article's policy, over the cluster fixture.
struct Case {
    name: String,
    inventory: Inventory,
    article: Vec<NetworkPolicy>,
    ir: Ir,
    generated: Vec<NetworkPolicy>,
    /// The article's objects lowered one to one to IR, as netcd would enforce them.
    article_ir: Ir,
    /// Codes of the example's diagnostics (all warnings: errors fail [`Case::load`]).
    warnings: Vec<&'static str>,
}

impl Case {
    /// `examples/seed/NAME.np` and `tests/fixtures/article/NAME.yaml`.
    fn load(name: &str) -> Case {
        let path = format!("examples/seed/{name}.np");
        Case::from_source(name, &path, &read(&path))
    }

    /// A netc program given as text (for the control tests), against the article's `name`.
    fn from_source(name: &str, file_name: &str, text: &str) -> Case {
        let article_yaml = read(&format!("compiler/tests/fixtures/article/{name}.yaml"));
        let article = yaml::parse_network_policies(&article_yaml).expect("the article's YAML parses");
        let origins = netc::import::locate(&format!("{name}.yaml"), &article_yaml, &article);
        let article_ir = netc::import::to_ir(&article, &origins).expect("the article's objects lower to IR");
        assert_eq!(article.len(), 1, "each article snippet is one NetworkPolicy");
        assert_eq!(article[0].metadata.name.as_deref(), Some(name), "fixture named after its policy");

        let out = netc::compile(&[SourceFile::new(file_name, text)]);
        assert!(!out.has_errors(), "{file_name} must compile: {:#?}", out.diagnostics);
        let ir = out.ir.expect("no errors, so there is IR");
        let stream = yaml::render_stream(&codegen::network_policies(&ir), &ir.sources);
        let generated = yaml::parse_network_policies(&stream).expect("netc's YAML parses back");
        Case {
            name: name.to_owned(),
            inventory: cluster(),
            article,
            ir,
            generated,
            article_ir,
            warnings: out.diagnostics.iter().map(|d| d.code).collect(),
        }
    }

    /// Every endpoint of the cluster: its pods, then its external addresses.
    fn endpoints(&self) -> Vec<(String, Endpoint<'_>)> {
        let pods =
            self.inventory.pods.iter().map(|p| (format!("{}/{}", p.namespace, p.name), Endpoint::Pod(p)));
        let externals =
            self.inventory.externals.iter().map(|e| (e.address.to_string(), Endpoint::External(e.address)));
        pods.chain(externals).collect()
    }

    /// `namespace/pod` or an address, as in [`Case::endpoints`].
    fn endpoint(&self, name: &str) -> Endpoint<'_> {
        if let Ok(ip) = name.parse() {
            return Endpoint::External(ip);
        }
        let (ns, pod) = name.split_once('/').expect("namespace/pod");
        Endpoint::Pod(self.inventory.pod(ns, pod).unwrap_or_else(|| panic!("no pod {name} in the fixture")))
    }

    /// The three judgements of one flow: the article's, the IR's and the generated YAML's.
    fn judge(&self, flow: &Flow<'_>) -> [Judgement; 4] {
        let article =
            K8sEvaluator::new(&self.article, &self.inventory).expect("the article's policy is valid");
        let generated =
            K8sEvaluator::new(&self.generated, &self.inventory).expect("netc's policies are valid");
        let ir = Evaluator::new(&self.ir, &self.inventory);
        let article_ir = Evaluator::new(&self.article_ir, &self.inventory);
        [
            (&article.evaluate(flow)).into(),
            (&ir.evaluate(flow)).into(),
            (&generated.evaluate(flow)).into(),
            (&article_ir.evaluate(flow)).into(),
        ]
    }

    /// Every flow of the cluster where the three judges disagree, described; and how many flows
    /// were judged, and how many the article allows.
    fn disagreements(&self) -> (Vec<String>, usize, usize) {
        let article =
            K8sEvaluator::new(&self.article, &self.inventory).expect("the article's policy is valid");
        let generated =
            K8sEvaluator::new(&self.generated, &self.inventory).expect("netc's policies are valid");
        let ir = Evaluator::new(&self.ir, &self.inventory);
        let article_ir = Evaluator::new(&self.article_ir, &self.inventory);
        let endpoints = self.endpoints();
        let (mut out, mut judged, mut allowed) = (Vec::new(), 0, 0);
        for (src_name, src) in &endpoints {
            for (dst_name, dst) in &endpoints {
                for (protocol, port) in PROBES {
                    let flow =
                        Flow { src: *src, dst: *dst, protocol, port, family: Flow::families(src, dst)[0] };
                    let a: Judgement = (&article.evaluate(&flow)).into();
                    let i: Judgement = (&ir.evaluate(&flow)).into();
                    let g: Judgement = (&generated.evaluate(&flow)).into();
                    let y: Judgement = (&article_ir.evaluate(&flow)).into();
                    judged += 1;
                    allowed += usize::from(a.allowed);
                    if a != i || a != g || a != y {
                        out.push(format!(
                            "{src_name} -> {dst_name} {protocol}/{port}: article {a}, netc IR {i}, netc YAML {g}, article as IR {y}"
                        ));
                    }
                }
            }
        }
        (out, judged, allowed)
    }

    /// The three judges agree on every flow, and the article's verdicts are not all the same.
    fn assert_equivalent(&self) {
        let (disagreements, judged, allowed) = self.disagreements();
        let endpoints = self.endpoints().len();
        assert_eq!(judged, endpoints * endpoints * PROBES.len(), "every flow was judged");
        assert!(endpoints >= 20, "the cluster fixture has pods and externals ({endpoints})");
        assert!(
            disagreements.is_empty(),
            "{}: {} of {judged} flows judged differently, first ones:\n{}",
            self.name,
            disagreements.len(),
            disagreements.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
        assert!(
            0 < allowed && allowed < judged,
            "{}: the article allows some flows and denies others",
            self.name
        );
    }

    /// Whether `src` may open a connection to `dst` on `protocol`/`port`, after checking that the
    /// three judges agree on it.
    fn allows(&self, src: &str, dst: &str, protocol: Protocol, port: u16) -> bool {
        let (s, d) = (self.endpoint(src), self.endpoint(dst));
        let flow = Flow::new(s, d, protocol, port);
        let [article, ir, generated, article_ir] = self.judge(&flow);
        assert!(
            article == ir && article == generated && article == article_ir,
            "{src} -> {dst} {protocol}/{port}: article {article}, IR {ir}, YAML {generated}, article as IR {article_ir}"
        );
        article.allowed
    }

    fn tcp(&self, src: &str, dst: &str, port: u16) -> bool {
        self.allows(src, dst, Protocol::Tcp, port)
    }

    /// The door verdicts of one flow (the judges agree, as checked by [`Case::allows`]).
    fn doors(&self, src: &str, dst: &str, port: u16) -> (Door, Door) {
        self.tcp(src, dst, port);
        let (s, d) = (self.endpoint(src), self.endpoint(dst));
        let [article, ..] = self.judge(&Flow::new(s, d, Protocol::Tcp, port));
        (article.egress, article.ingress)
    }

    /// Every flow in which `pod` takes part, as (verdict, description).
    fn flows_of(&self, pod: &str) -> Vec<(bool, String)> {
        let mut out = Vec::new();
        for (other, _) in self.endpoints() {
            if other == pod {
                continue;
            }
            for (protocol, port) in PROBES {
                out.push((
                    self.allows(pod, &other, protocol, port),
                    format!("{pod} -> {other} {protocol}/{port}"),
                ));
                out.push((
                    self.allows(&other, pod, protocol, port),
                    format!("{other} -> {pod} {protocol}/{port}"),
                ));
            }
        }
        out
    }
}

#[test]
fn the_cluster_fixture_has_what_the_article_looks_at() {
    let inv = cluster();
    let labelled =
        |k: &str, v: &str| inv.pods.iter().filter(|p| p.labels.get(k).map(String::as_str) == Some(v)).count();
    for app in ["frontend", "backend", "database", "hermit", "web"] {
        assert!(labelled("app", app) >= 2, "pods labelled app={app} in more than one namespace");
    }
    let monitoring =
        inv.namespaces.iter().filter(|n| n.labels.get("team").map(String::as_str) == Some("monitoring"));
    assert_eq!(monitoring.count(), 2);
    assert!(inv.implied_namespaces.is_empty(), "every namespace is described with its labels");
    assert_eq!(inv.externals.len(), 2);
}

#[test]
fn allow_frontend_means_the_articles_policy() {
    let case = Case::load("allow-frontend");
    assert_eq!(case.warnings, Vec::<&str>::new());
    case.assert_equivalent();

    // Frontend pods of `default` reach the backend on every port.
    assert!(case.tcp("default/frontend", "default/backend", 8080));
    assert!(case.tcp("default/frontend-canary", "default/backend", 5432));
    assert!(case.allows("default/frontend", "default/backend", Protocol::Udp, 53));
    // "If your database tries to get chatty with the backend? Nope. Denied."
    assert!(!case.tcp("default/database", "default/backend", 8080));
    assert_eq!(case.doors("default/database", "default/backend", 8080), (Door::Open, Door::Stops));
    // Everything else is blocked too: near-miss labels, other namespaces' frontends, the internet.
    assert!(!case.tcp("default/role-frontend", "default/backend", 8080));
    assert!(!case.tcp("monitoring/frontend", "default/backend", 8080));
    assert!(!case.tcp("app-space/frontend", "default/backend", 8080));
    assert!(!case.tcp("8.8.8.8", "default/backend", 443));
    // Only the backend's ingress is guarded: its egress and every other pod stay open.
    assert!(case.tcp("default/backend", "default/database", 5432));
    assert!(case.tcp("default/database", "default/frontend", 8080));
    assert!(case.tcp("app-space/database", "app-space/backend", 8080));
}

#[test]
fn restrict_egress_means_the_articles_policy() {
    let case = Case::load("restrict-egress");
    // No warning: the one-sided arrow does not guard the database (no W0205), and the missing DNS
    // of the article's policy is acknowledged in the file (`@allow(W0203)`), so that
    // `netc check --deny-warnings` passes on it.
    assert_eq!(case.warnings, Vec::<&str>::new());
    case.assert_equivalent();

    // The backend reaches the database (pods labelled app=database in its own namespace)...
    assert!(case.tcp("default/backend", "default/database", 5432));
    assert_eq!(case.doors("default/backend", "default/database", 5432), (Door::Passes, Door::Open));
    // ...and nothing else: not the internet, not other services, not the database of another
    // namespace, not even DNS (which is why netc warns).
    assert!(!case.tcp("default/backend", "8.8.8.8", 443));
    assert!(!case.tcp("default/backend", "2001:4860:4860::8888", 443));
    assert!(!case.tcp("default/backend", "default/frontend", 8080));
    assert!(!case.tcp("default/backend", "app-space/database", 5432));
    assert!(!case.allows("default/backend", "kube-system/coredns", Protocol::Udp, 53));
    // The database's ingress stays open, as in the article: anyone may still reach it.
    assert!(case.tcp("default/frontend", "default/database", 5432));
    assert!(case.tcp("8.8.8.8", "default/database", 5432));
    // The backend's ingress is untouched, and so is the backend of another namespace.
    assert!(case.tcp("default/database", "default/backend", 8080));
    assert!(case.tcp("app-space/backend", "8.8.8.8", 443));
}

#[test]
fn complete_isolation_means_the_articles_policy() {
    let case = Case::load("complete-isolation");
    assert_eq!(case.warnings, Vec::<&str>::new());
    case.assert_equivalent();

    // The hermit reaches nothing and nothing reaches it, on any probe port, in any direction.
    let flows = case.flows_of("default/hermit");
    assert!(flows.len() > 400, "{} flows", flows.len());
    let allowed: Vec<&String> = flows.iter().filter(|(ok, _)| *ok).map(|(_, what)| what).collect();
    assert!(allowed.is_empty(), "the hermit talks: {allowed:?}");
    // Nobody else is affected, the hermit of another namespace included.
    assert!(case.tcp("app-space/hermit", "8.8.8.8", 443));
    assert!(case.tcp("default/frontend", "app-space/hermit", 80));
    assert!(case.tcp("default/frontend", "default/backend", 80));
}

#[test]
fn allow_monitoring_means_the_articles_policy() {
    let case = Case::load("allow-monitoring");
    assert_eq!(case.warnings, Vec::<&str>::new());
    case.assert_equivalent();

    // Pods of namespaces labelled team=monitoring reach the web pods of app-space, on any port,
    // whatever their own labels.
    assert!(case.tcp("monitoring/prometheus", "app-space/web-1", 9090));
    assert!(case.tcp("observability/agent", "app-space/web-2", 8080));
    assert!(case.allows("monitoring/frontend", "app-space/web-1", Protocol::Udp, 53));
    // Only them: not the web pods' own namespace, not a near-miss label, not the internet.
    assert!(!case.tcp("app-space/frontend", "app-space/web-1", 9090));
    assert!(!case.tcp("app-space/web-2", "app-space/web-1", 8080));
    assert!(!case.tcp("team-monitoring/prometheus", "app-space/web-1", 9090));
    assert!(!case.tcp("default/frontend", "app-space/web-1", 9090));
    assert!(!case.tcp("8.8.8.8", "app-space/web-2", 443));
    // `web` pods of other namespaces, and every other pod of app-space, stay open.
    assert!(case.tcp("default/frontend", "default/web", 9090));
    assert!(case.tcp("default/frontend", "app-space/backend", 8080));
    // The web pods' egress is untouched.
    assert!(case.tcp("app-space/web-1", "8.8.8.8", 443));
}

/// The comparison has teeth: programs that are close to the article but not the same are caught.
#[test]
fn near_misses_of_the_seed_programs_are_told_apart() {
    let differs = |name: &str, text: &str| {
        let (disagreements, _, _) = Case::from_source(name, "near-miss.np", text).disagreements();
        assert!(!disagreements.is_empty(), "{name}: `{text}` should not be equivalent to the article");
    };
    // A port the article does not restrict.
    differs("allow-frontend", "frontend -> backend:8080\n");
    // A two-sided arrow guards the database's ingress too.
    differs("restrict-egress", "backend egress guarded\nbackend -> database\n");
    // The form the example used before the one-sided arrow is still equivalent.
    let (disagreements, _, _) = Case::from_source(
        "restrict-egress",
        "old-form.np",
        "database ingress open\nbackend egress guarded\nbackend -> database\n",
    )
    .disagreements();
    assert!(disagreements.is_empty(), "{disagreements:?}");
    // The fix netc suggests (DNS) is more than the article allows.
    differs("restrict-egress", "backend egress guarded\negress backend -> database, dns\n");
    // One door only.
    differs("complete-isolation", "hermit ingress guarded\n");
    // By namespace name instead of label: `observability` is labelled too.
    differs("allow-monitoring", "namespace app-space\nmonitoring/* -> web\n");
    // The right label in the wrong namespace.
    differs("allow-monitoring", "{team=monitoring}/* -> web\n");
}

/// What netcd prints for a cluster's own objects: each rule of the lowered IR names its object
/// and its index, and where the object was read.
#[test]
fn the_articles_objects_lowered_to_ir_name_object_and_rule() {
    let case = Case::load("allow-frontend");
    let rules: Vec<(String, String, String)> = case
        .article_ir
        .rules()
        .map(|(p, _, r)| (format!("{}/{}", p.namespace, p.name), r.id.clone(), r.span.to_string()))
        .collect();
    let yaml = read("compiler/tests/fixtures/article/allow-frontend.yaml");
    let line = yaml.lines().position(|l| l.trim() == "name: allow-frontend").expect("the name line") + 1;
    assert_eq!(
        rules,
        [(
            "default/allow-frontend".to_owned(),
            "default/allow-frontend:ingress[0]".to_owned(),
            format!("allow-frontend.yaml:{line}:1")
        )]
    );
    // Two objects with one name are refused, not merged.
    let twice = [case.article[0].clone(), case.article[0].clone()];
    let e = netc::import::to_ir(&twice, &[]).expect_err("a name twice");
    assert!(e.to_string().contains("two objects"), "{e}");
}
