//! Verdict events as JSON lines: what `netcd run` prints on stdout.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::abi::{self, Event};
use crate::plan::Plan;

/// Converts the datapath's boot-time clock into wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Wall-clock time at boot, in nanoseconds since the Unix epoch.
    boot_epoch_ns: u128,
}

impl Clock {
    /// Measure the offset between CLOCK_BOOTTIME and the wall clock now.
    #[must_use]
    pub fn now() -> Clock {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on every Linux netcd
        // runs on (it needs eBPF, far newer than 2.6.39).
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) };
        let boot_ns =
            u128::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u128::try_from(ts.tv_nsec).unwrap_or(0);
        let wall_ns = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_nanos();
        Clock { boot_epoch_ns: wall_ns.saturating_sub(boot_ns) }
    }

    /// RFC 3339 UTC time (nanoseconds) of a datapath timestamp.
    #[must_use]
    pub fn rfc3339(&self, boot_ns: u64) -> String {
        rfc3339(self.boot_epoch_ns + u128::from(boot_ns))
    }
}

/// `2026-11-26T08:30:00.123456789Z` for nanoseconds since the Unix epoch.
#[must_use]
pub fn rfc3339(epoch_ns: u128) -> String {
    let secs = epoch_ns / 1_000_000_000;
    let nanos = epoch_ns % 1_000_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The protocol's name for events.
#[must_use]
pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        6 => "TCP".into(),
        17 => "UDP".into(),
        132 => "SCTP".into(),
        1 => "ICMP".into(),
        58 => "ICMPv6".into(),
        n => format!("IP/{n}"),
    }
}

/// The rule an event names. Always these three keys (one schema for every line): each is `null`
/// only when the event was judged by a generation this netcd never knew (one an earlier netcd
/// applied, whose events were queued while netcd was down); the line's `note` then says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// The rule's stable id.
    pub id: Option<String>,
    /// `file:line` of the statement it comes from.
    pub source: Option<String>,
    /// `namespace/name` of its policy.
    pub policy: Option<String>,
}

/// The Service a flow went through: the client called `frontend`, kube-proxy translated it to
/// `backend` (the line's `dst` and `dport`), and the client's egress door was judged on that.
/// `name` and `frontend` are `null` when the datapath no longer remembered the call (its record
/// of recent calls is bounded) or the generation is one this netcd never knew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRef {
    /// `namespace/name` of the Service.
    pub name: Option<String>,
    /// The address and port the client called (`10.96.0.10:80`, `[fd00:96::10]:80`).
    pub frontend: Option<String>,
    /// The backend and targetPort kube-proxy chose.
    pub backend: String,
}

/// One verdict as printed: fields in reading order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerdictLine {
    /// RFC 3339, UTC, nanoseconds.
    pub time: String,
    /// `allow`, `deny` or `audit`.
    pub verdict: &'static str,
    /// The door: `ingress` (into `pod`) or `egress` (out of it).
    pub direction: &'static str,
    /// `namespace/name` of the pod whose door it is (`null` only when no plan this netcd knows
    /// has a pod behind the interface any more).
    pub pod: Option<String>,
    /// Its host-side interface.
    pub interface: Option<String>,
    /// Source address of the flow's first packet.
    pub src: String,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: String,
    /// Destination port.
    pub dport: u16,
    /// `TCP`, `UDP`, `SCTP`, ...
    pub protocol: String,
    /// The rule that allowed it (`null` for denials and audits).
    pub rule: Option<RuleRef>,
    /// The Service the flow went through, when the client called one (its egress door judged
    /// after kube-proxy's translation: `dst` and `dport` are the backend's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// `new-flow`, or `policy-changed` for a flow judged again after a reload.
    pub reason: &'static str,
    /// The policy generation that judged it.
    pub generation: u32,
    /// Why, when no rule is named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One event as a printed line. `plans` are the plans this netcd knows, by generation: the
/// event's own names its pod and rule. An event of a generation not among them (judged by an
/// earlier netcd, queued while netcd was down) names the pod now behind its interface, in the
/// newest plan, and its rule as unknown, with a note: the same keys either way. `interface` is the
/// name of its ifindex.
#[must_use]
pub fn line(
    event: &Event,
    clock: &Clock,
    plans: &BTreeMap<u32, impl AsRef<Plan>>,
    interface: Option<&str>,
) -> VerdictLine {
    let plan = plans.get(&event.generation).map(AsRef::as_ref);
    let verdict = match event.verdict {
        abi::VERDICT_ALLOW => "allow",
        abi::VERDICT_DENY => "deny",
        abi::VERDICT_AUDIT => "audit",
        _ => "unknown",
    };
    let direction = if event.direction == abi::INGRESS { "ingress" } else { "egress" };
    let src: IpAddr = abi::addr_from_bytes(event.family, event.saddr);
    let dst: IpAddr = abi::addr_from_bytes(event.family, event.daddr);
    let pod = match plan {
        Some(p) => p.endpoints.iter().find(|e| e.id == event.endpoint),
        None => plans.values().next_back().and_then(|newest| {
            newest
                .as_ref()
                .endpoints
                .iter()
                .find(|e| interface.is_some() && e.interface.as_deref() == interface)
        }),
    }
    .map(|e| format!("{}/{}", e.namespace, e.name));
    let rule = match event.rule {
        abi::RULE_NONE | abi::RULE_OPEN | abi::RULE_FAIL_CLOSED | abi::RULE_NODE => None,
        index => Some(match plan.and_then(|p| p.rule(index)) {
            Some(r) => RuleRef {
                id: Some(r.id.clone()),
                source: Some(r.source.clone()),
                policy: Some(r.policy.clone()),
            },
            None => RuleRef { id: None, source: None, policy: None },
        }),
    };
    let note = match event.rule {
        abi::RULE_FAIL_CLOSED => {
            Some("endpoint failed closed: its policy did not fit in the datapath's maps".to_owned())
        }
        abi::RULE_NONE => Some(format!("no rule of the policies guarding this pod's {direction} allows it")),
        abi::RULE_NODE => Some(
            "from the pod's own node, which a pod cannot block (Kubernetes; kubelet probes): always let in"
                .to_owned(),
        ),
        _ if plan.is_none() => Some(format!(
            "judged by generation {}, applied by an earlier netcd (queued while netcd was not running): its rules are not known to this one",
            event.generation
        )),
        _ => None,
    };
    let service = (event.flags & abi::EVENT_SERVICE != 0).then(|| {
        // A Service port is never 0: 0 is a call the datapath no longer remembered.
        let known = event.frontend_port != 0;
        ServiceRef {
            name: plan
                .filter(|_| known)
                .and_then(|p| p.services.get(usize::try_from(event.service).unwrap_or(usize::MAX)))
                .cloned(),
            frontend: known.then(|| {
                let frontend: IpAddr = abi::addr_from_bytes(event.family, event.frontend);
                std::net::SocketAddr::new(frontend, event.frontend_port).to_string()
            }),
            backend: std::net::SocketAddr::new(dst, event.dport).to_string(),
        }
    });
    VerdictLine {
        time: clock.rfc3339(event.time_ns),
        verdict,
        direction,
        pod,
        interface: interface.map(str::to_owned),
        src: src.to_string(),
        sport: event.sport,
        dst: dst.to_string(),
        dport: event.dport,
        protocol: protocol_name(event.protocol),
        rule,
        service,
        reason: if event.reason == abi::REASON_REJUDGE { "policy-changed" } else { "new-flow" },
        generation: event.generation,
        note,
    }
}

/// [`line()`] as JSON.
#[must_use]
pub fn to_json(
    event: &Event,
    clock: &Clock,
    plans: &BTreeMap<u32, impl AsRef<Plan>>,
    interface: Option<&str>,
) -> Value {
    serde_json::to_value(line(event, clock, plans, interface)).expect("a VerdictLine is plain data")
}

/// [`line()`] as one line of JSON text.
#[must_use]
pub fn to_json_line(
    event: &Event,
    clock: &Clock,
    plans: &BTreeMap<u32, impl AsRef<Plan>>,
    interface: Option<&str>,
) -> String {
    serde_json::to_string(&line(event, clock, plans, interface)).expect("a VerdictLine is plain data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        // 2000-02-29T12:34:56.5Z: a leap day.
        assert_eq!(rfc3339(951_827_696_500_000_000), "2000-02-29T12:34:56.500000000Z");
    }

    #[test]
    fn renders_an_event_with_its_rule() {
        let mut plan = Plan::default();
        plan.rules = vec![crate::plan::RuleInfo {
            id: "r1".into(),
            source: "a.np:3".into(),
            policy: "default/backend".into(),
            direction: netc_ir::Direction::Ingress,
        }];
        let (_, saddr) = abi::addr_bytes("10.0.0.1".parse().expect("ip"));
        let (_, daddr) = abi::addr_bytes("10.0.0.2".parse().expect("ip"));
        let event = Event {
            rule: 0,
            saddr,
            daddr,
            sport: 40000,
            dport: 8080,
            family: 4,
            protocol: 6,
            direction: abi::INGRESS,
            verdict: abi::VERDICT_ALLOW,
            reason: abi::REASON_NEW,
            ..Event::default()
        };
        let v = to_json(&event, &Clock { boot_epoch_ns: 0 }, &BTreeMap::from([(0, &plan)]), Some("veth0"));
        assert_eq!(v["verdict"], "allow");
        assert_eq!(v["src"], "10.0.0.1");
        assert_eq!(v["dport"], 8080);
        assert_eq!(v["protocol"], "TCP");
        assert_eq!(v["rule"]["source"], "a.np:3");
        assert_eq!(v["interface"], "veth0");
    }

    /// The keys of a line and of its rule, as a reader of the stream sees them.
    fn shape(v: &Value) -> (Vec<String>, Vec<String>) {
        let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        (keys(v), keys(&v["rule"]))
    }

    /// After `kill -9` and a restart, the events queued meanwhile come from a generation the new
    /// netcd never planned: they printed `"pod": null` and `"rule": {"index": 1}`. The same keys
    /// now, the pod found by its interface in the newest plan, the rule's fields null, and a note.
    #[test]
    fn an_event_of_a_generation_this_netcd_never_knew_has_the_same_schema() {
        let mut plan = Plan::default();
        plan.rules = vec![crate::plan::RuleInfo {
            id: "r1".into(),
            source: "a.np:3".into(),
            policy: "default/backend".into(),
            direction: netc_ir::Direction::Ingress,
        }];
        plan.endpoints = vec![crate::plan::PlannedEndpoint {
            id: 7,
            set: 0,
            namespace: "default".into(),
            name: "backend".into(),
            interface: Some("veth0".into()),
            ips: vec![],
            flags: 0,
            doors: [abi::DOOR_GUARDED, 0],
        }];
        let (_, saddr) = abi::addr_bytes("10.0.0.1".parse().expect("ip"));
        let (_, daddr) = abi::addr_bytes("10.0.0.2".parse().expect("ip"));
        let known = Event {
            generation: 5,
            endpoint: 7,
            rule: 0,
            saddr,
            daddr,
            family: 4,
            protocol: 6,
            direction: abi::INGRESS,
            verdict: abi::VERDICT_ALLOW,
            reason: abi::REASON_NEW,
            ..Event::default()
        };
        let plans = BTreeMap::from([(5, &plan)]);
        let clock = Clock { boot_epoch_ns: 0 };
        let now = to_json(&known, &clock, &plans, Some("veth0"));
        // Generation 4 was an earlier netcd's; endpoint 3 was its number for the pod.
        let queued = Event { generation: 4, endpoint: 3, rule: 1, ..known };
        let then = to_json(&queued, &clock, &plans, Some("veth0"));
        let (keys, rule_keys) = shape(&then);
        assert_eq!(rule_keys, ["id", "policy", "source"].map(String::from), "{then}");
        let (now_keys, _) = shape(&now);
        assert_eq!(
            keys.iter().filter(|k| *k != "note").collect::<Vec<_>>(),
            now_keys.iter().collect::<Vec<_>>()
        );
        assert_eq!(then["pod"], "default/backend", "found by its interface");
        assert!(then["rule"]["id"].is_null() && then["rule"]["source"].is_null(), "{then}");
        assert!(then["note"].as_str().is_some_and(|n| n.contains("generation 4")), "{then}");
        // Traffic from the node names no rule, and says why it passed.
        let node = Event { rule: abi::RULE_NODE, ..known };
        let line = to_json(&node, &clock, &plans, Some("veth0"));
        assert!(line["rule"].is_null(), "{line}");
        assert!(line["note"].as_str().is_some_and(|n| n.contains("own node")), "{line}");
    }

    #[test]
    fn a_service_call_names_the_service_its_frontend_and_backend() {
        let mut plan = Plan::default();
        plan.services = vec!["data/db".into()];
        let (_, saddr) = abi::addr_bytes("fd00::1".parse().expect("ip"));
        let (_, daddr) = abi::addr_bytes("fd00::2".parse().expect("ip"));
        let (_, frontend) = abi::addr_bytes("fd00:96::10".parse().expect("ip"));
        let event = Event {
            generation: 1,
            rule: abi::RULE_NONE,
            saddr,
            daddr,
            dport: 5432,
            family: 6,
            protocol: 6,
            direction: abi::EGRESS,
            verdict: abi::VERDICT_DENY,
            reason: abi::REASON_NEW,
            flags: abi::EVENT_SERVICE,
            service: 0,
            frontend_port: 80,
            frontend,
            ..Event::default()
        };
        let plans = BTreeMap::from([(1, &plan)]);
        let clock = Clock { boot_epoch_ns: 0 };
        let v = to_json(&event, &clock, &plans, None);
        assert_eq!(v["service"]["name"], "data/db", "{v}");
        assert_eq!(v["service"]["frontend"], "[fd00:96::10]:80", "{v}");
        assert_eq!(v["service"]["backend"], "[fd00::2]:5432", "{v}");
        // A call no longer remembered: through a Service, which one unknown.
        let forgotten = to_json(&Event { frontend_port: 0, ..event }, &clock, &plans, None);
        assert!(
            forgotten["service"]["name"].is_null() && forgotten["service"]["frontend"].is_null(),
            "{forgotten}"
        );
        assert_eq!(forgotten["service"]["backend"], "[fd00::2]:5432", "{forgotten}");
        // A flow that called no Service has no `service` key.
        let direct = to_json(&Event { flags: 0, frontend_port: 0, ..event }, &clock, &plans, None);
        assert!(direct.get("service").is_none(), "{direct}");
    }
}
