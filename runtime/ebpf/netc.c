// SPDX-License-Identifier: Apache-2.0
/*
 * netc datapath: one classifier pair on each local pod's host-side veth.
 *
 *   netc_from_pod  tc ingress of the host-side veth = packets leaving the pod  = its EGRESS door
 *   netc_to_pod    tc egress of the host-side veth  = packets entering the pod = its INGRESS door
 *
 * Pod to pod on one node crosses the sender's egress door and then the receiver's ingress door,
 * so a flow passes only when both allow it (Kubernetes' rule). Each door keeps its own conntrack
 * entries: replies of a connection judged at a door pass that door in the other direction.
 *
 * The entries are built by netcd from the IR (runtime/src/plan.rs); the layouts are in
 * netc_abi.h. Anything that is not IPv4 or IPv6 (ARP, LLDP) passes untouched, and so does the
 * link's own control traffic: IPv6 neighbour discovery (without which no IPv6 address works),
 * multicast listener discovery (MLD, which a pod's kernel sends to ff02::16 as its interface
 * comes up) and IGMP, its IPv4 twin. None of it leaves the link between the pod and its node.
 *
 * Traffic from the pod's own node passes its ingress door whatever the policy (Kubernetes: pods
 * cannot block their resident node; kubelet probes depend on it). "From the node" is a packet
 * the node's own network stack made: at the host-side veth's tc egress its ingress_ifindex is 0,
 * while anything forwarded (from another pod's veth, another node, a NodePort from outside,
 * masqueraded or not) carries the interface it came in on.
 *
 * Services (kube-proxy, iptables or nftables mode) are translated by the node's netfilter after
 * the client's egress door and before the backend's ingress door. A pod whose egress is guarded
 * calling a Service frontend (netc_frontends: a ClusterIP and port, a NodePort) is therefore not
 * judged at its veth: the packet passes with the Service mark bit (netc_config.service_mark) and
 * the flow is remembered there (rule NETC_RULE_SERVICE) so that its replies, translated back by
 * netfilter, pass. The client's egress door is judged at the first tc egress hook after the
 * translation, on the backend and targetPort kube-proxy chose:
 *
 *   netc_to_pod    the backend's veth (a backend on this node), before the backend's ingress door
 *   netc_uplink    tc egress of the node's uplink(s) (a backend on another node)
 *
 * There the client is the endpoint of the packet's ingress interface (a forwarded packet keeps
 * the interface it came in on; masquerade changes its source address, not that), and the flow is
 * remembered under the translated tuple at the client's interface and egress door.
 *
 * A TCP call's entry at the client's veth starts pending (NETC_VERDICT_PENDING): nothing passes
 * the client's ingress door as its reply until the judgement after the translation allows the
 * SYN, which finds that entry through the call's record (netc_service_calls, keyed by the SYN's
 * sequence number, which masquerade keeps) and makes it an allowed one; a denial forgets it. So a
 * packet forged to come from the frontend cannot pass the client's ingress door on a call that
 * was denied.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "netc_abi.h"
#include "conntrack.h"

char LICENSE[] SEC("license") = "GPL";

/* Map capacities: one set of numbers with the compiler's budget checks (netc_ir::capacity,
 * passed by runtime/build.rs as -DNETC_CAP_*). */
#if !defined(NETC_CAP_ENDPOINTS) || !defined(NETC_CAP_IPCACHE) || !defined(NETC_CAP_CIDRS) || \
	!defined(NETC_CAP_POLICY) || !defined(NETC_CAP_PORT_RANGES) || !defined(NETC_CAP_FRONTENDS) || \
	!defined(NETC_CAP_RULES)
#error "build through runtime/build.rs: it defines NETC_CAP_* from compiler/ir/src/capacity.rs"
#endif
#define NETC_MAX_RULES NETC_CAP_RULES

/* netc_config[0] (array): the live generation and epoch; generation 0 = nothing loaded,
 * everything passes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct netc_config);
} netc_config SEC(".maps");

/* netc_endpoints (hash): (generation, ifindex) -> the local pod behind that veth and its doors. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETC_CAP_ENDPOINTS);
	__type(key, struct netc_endpoint_key);
	__type(value, struct netc_endpoint);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} netc_endpoints SEC(".maps");

/* netc_ipcache (hash): (generation, pod address) -> identity. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETC_CAP_IPCACHE);
	__type(key, struct netc_ip_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} netc_ipcache SEC(".maps");

/* netc_cidrs (LPM trie): (generation, prefix) -> identity, for addresses that are not pods.
 * Every ipBlock CIDR and every except prefix is its own entry, so the longest match of an
 * address inside an except is the except's identity, which the block's rules do not name. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NETC_CAP_CIDRS);
	__type(key, struct netc_cidr_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} netc_cidrs SEC(".maps");

/* netc_policy (hash): (generation, policy set, direction, identity, protocol, port) -> rule. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETC_CAP_POLICY);
	__type(key, struct netc_policy_key);
	__type(value, struct netc_policy_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} netc_policy SEC(".maps");

/* netc_port_ranges (LPM trie): like netc_policy for port ranges, split into aligned blocks. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NETC_CAP_PORT_RANGES);
	__type(key, struct netc_range_key);
	__type(value, struct netc_policy_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} netc_port_ranges SEC(".maps");

/* netc_frontends (hash): (generation, family, protocol, port, address) -> Service, the frontends
 * whose calls are judged after kube-proxy's translation. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETC_CAP_FRONTENDS);
	__type(key, struct netc_frontend_key);
	__type(value, struct netc_frontend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} netc_frontends SEC(".maps");

/* A Service call as the client's veth saw it, so that the verdict after the translation can name
 * the Service, its frontend and the client's own address (masquerade may have replaced it). Keyed
 * by what the translation keeps: the client's interface, family and protocol, and a TCP SYN's
 * sequence number (masquerade may change the source port: kube-proxy's --random-fully), else
 * the source port. */
struct netc_call_key {
	__u32 ifindex;
	__u32 id; /* a TCP SYN's sequence number, else the source port (network byte order) */
	__u8 family;
	__u8 protocol;
	__u16 pad;
};

struct netc_call {
	__u32 service;
	__u16 port; /* the frontend's port, network byte order */
	__u16 sport; /* the client's own source port, network byte order */
	__u8 client[16];
	__u8 frontend[16];
};

/* netc_service_calls (LRU hash): recent Service calls, read to report a verdict and to find a TCP
 * call's pending entry at the client's veth. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct netc_call_key);
	__type(value, struct netc_call);
} netc_service_calls SEC(".maps");

/* netc_conntrack (array of struct netc_ct_slot, in sets of NETC_CT_WAYS; conntrack.h): flows
 * judged at a door -> the verdict and the generation and epoch that judged it. Shared by every
 * CPU; a full set replaces the flow it saw least recently. netcd sizes it (--conntrack-entries,
 * a power of two) and writes its number of sets and the hash seed into netc_config. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 262144);
	__type(key, __u32);
	__type(value, struct netc_ct_slot);
} netc_conntrack SEC(".maps");

/* netc_events (ring buffer): struct netc_event for every denied, audited and (when asked)
 * allowed new flow. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} netc_events SEC(".maps");

/* netc_rule_counters (per-CPU array): rule index -> new flows that rule allowed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETC_MAX_RULES);
	__type(key, __u32);
	__type(value, __u64);
} netc_rule_counters SEC(".maps");

/* netc_stats (per-CPU array): NETC_STAT_* -> packets. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETC_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} netc_stats SEC(".maps");

/* What the parser learnt of a packet. */
struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* network byte order; 0 without ports (ICMP, later fragments) */
	__u16 dport;
	__u8 family;
	__u8 protocol;
	__u8 tcp_syn; /* a TCP SYN without ACK: opens a connection, never a reply */
	__u8 from_node; /* made by the node's own stack, seen at the pod's ingress door */
	__u8 translated; /* a Service call after kube-proxy's translation, at the client's egress door */
	__u32 seq; /* TCP sequence number (network byte order) */
};

enum parse_result {
	PARSE_IP,       /* judge it */
	PARSE_NOT_IP,   /* ARP and friends: pass */
	PARSE_ALWAYS,   /* the link's control traffic (ND, MLD, IGMP): pass */
};

#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_IGMP_ 2

static __always_inline void count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&netc_stats, &stat);
	if (n)
		*n += 1;
}

/* Ports of TCP, UDP and SCTP all open the transport header: source then destination. */
static __always_inline int has_ports(__u8 protocol)
{
	return protocol == IPPROTO_TCP || protocol == IPPROTO_UDP || protocol == IPPROTO_SCTP;
}

static __always_inline void read_ports(void *l4, void *data_end, struct flow *f)
{
	__be16 *ports = l4;
	if (!has_ports(f->protocol) || (void *)(ports + 2) > data_end)
		return;
	f->sport = ports[0];
	f->dport = ports[1];
	__be32 *seq = (__be32 *)((__u8 *)l4 + 4);
	if (f->protocol == IPPROTO_TCP && (void *)(seq + 1) <= data_end)
		f->seq = *seq;
	__u8 *flags = (__u8 *)l4 + 13;
	if (f->protocol == IPPROTO_TCP && (void *)(flags + 1) <= data_end)
		f->tcp_syn = (*flags & 0x12) == 0x02;
}

static __always_inline enum parse_result parse_v4(void *l3, void *data_end, struct flow *f)
{
	struct iphdr *ip = l3;
	if ((void *)(ip + 1) > data_end || ip->ihl < 5)
		return PARSE_NOT_IP;
	f->family = NETC_FAMILY_V4;
	f->protocol = ip->protocol;
	if (ip->protocol == IPPROTO_IGMP_)
		return PARSE_ALWAYS;
	__builtin_memcpy(f->saddr, &ip->saddr, 4);
	__builtin_memcpy(f->daddr, &ip->daddr, 4);
	/* Later fragments carry no ports: they are judged as port 0, which only port-less
	 * entries (all ports) allow. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return PARSE_IP;
	read_ports((void *)ip + ip->ihl * 4, data_end, f);
	return PARSE_IP;
}

static __always_inline enum parse_result parse_v6(void *l3, void *data_end, struct flow *f)
{
	struct ipv6hdr *ip6 = l3;
	if ((void *)(ip6 + 1) > data_end)
		return PARSE_NOT_IP;
	f->family = NETC_FAMILY_V6;
	__builtin_memcpy(f->saddr, &ip6->saddr, 16);
	__builtin_memcpy(f->daddr, &ip6->daddr, 16);
	__u8 next = ip6->nexthdr;
	void *cursor = ip6 + 1;
	int later_fragment = 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (next != NEXTHDR_HOP && next != NEXTHDR_ROUTING && next != NEXTHDR_DEST &&
		    next != NEXTHDR_FRAGMENT)
			break;
		__u8 *ext = cursor;
		if ((void *)(ext + 8) > data_end)
			return PARSE_NOT_IP;
		if (next == NEXTHDR_FRAGMENT) {
			if ((ext[2] << 8 | ext[3]) & 0xfff8)
				later_fragment = 1;
			cursor = ext + 8;
		} else {
			cursor = ext + (ext[1] + 1) * 8;
		}
		next = ext[0];
	}
	f->protocol = next;
	if (next == IPPROTO_ICMPV6_) {
		__u8 *icmp = cursor;
		/* Link control: MLD query, report, done (130..132) and MLDv2 report (143); router and
		 * neighbour solicitation and advertisement, redirect (133..137). */
		if ((void *)(icmp + 1) <= data_end &&
		    ((icmp[0] >= 130 && icmp[0] <= 137) || icmp[0] == 143))
			return PARSE_ALWAYS;
	}
	if (!later_fragment)
		read_ports(cursor, data_end, f);
	return PARSE_IP;
}

static __always_inline enum parse_result parse(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return PARSE_NOT_IP;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return parse_v4(eth + 1, data_end, f);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return parse_v6(eth + 1, data_end, f);
	return PARSE_NOT_IP;
}

/* The identity of a peer address: a pod's, else the longest CIDR's, else the world's. */
static __always_inline __u32 identity_of(__u32 generation, __u8 family, const __u8 *addr)
{
	struct netc_ip_key ip = { .generation = generation, .family = family };
	__builtin_memcpy(ip.addr, addr, 16);
	__u32 *id = bpf_map_lookup_elem(&netc_ipcache, &ip);
	if (id)
		return *id;
	struct netc_cidr_key cidr = {
		.prefixlen = 64 + (family == NETC_FAMILY_V4 ? 32 : 128),
		.generation = generation,
		.family = family,
	};
	__builtin_memcpy(cidr.addr, addr, 16);
	id = bpf_map_lookup_elem(&netc_cidrs, &cidr);
	return id ? *id : NETC_IDENTITY_WORLD;
}

/* The rule of one peer identity (or ANY) at a door, trying only the kinds of entries the
 * door has. */
static __always_inline __u32 lookup_rule(struct netc_policy_key *key, __u16 door, __u8 protocol,
					 __u16 port)
{
	struct netc_policy_value *v;
	key->protocol = protocol;
	key->port = port;
	v = bpf_map_lookup_elem(&netc_policy, key);
	if (v)
		return v->rule;
	if (door & NETC_DOOR_ANY_PORT) {
		key->port = 0;
		v = bpf_map_lookup_elem(&netc_policy, key);
		if (v)
			return v->rule;
	}
	if (door & NETC_DOOR_ANY_PROTO) {
		key->protocol = 0;
		key->port = 0;
		v = bpf_map_lookup_elem(&netc_policy, key);
		if (v)
			return v->rule;
	}
	if (door & NETC_DOOR_RANGES) {
		struct netc_range_key range = {
			.prefixlen = 8 * 14 + 16,
			.generation = key->generation,
			.set = key->set,
			.identity = key->identity,
			.direction = key->direction,
			.protocol = protocol,
			.port = port,
		};
		v = bpf_map_lookup_elem(&netc_port_ranges, &range);
		if (v)
			return v->rule;
	}
	return NETC_RULE_NONE;
}

/* The Service whose frontend the flow calls, or NETC_SERVICE_NONE: its destination address and
 * port, else a NodePort (any address). */
static __always_inline __u32 frontend_of(__u32 generation, const struct flow *f)
{
	struct netc_frontend_key key = {
		.generation = generation,
		.family = f->family,
		.protocol = f->protocol,
		.port = f->dport,
	};
	__builtin_memcpy(key.addr, f->daddr, 16);
	struct netc_frontend *fe = bpf_map_lookup_elem(&netc_frontends, &key);
	if (fe)
		return fe->service;
	__builtin_memset(key.addr, 0, 16);
	fe = bpf_map_lookup_elem(&netc_frontends, &key);
	return fe ? fe->service : NETC_SERVICE_NONE;
}

/* Which rule lets this flow through a door; NETC_RULE_OPEN when the door is not guarded. */
static __always_inline __u32 decide(__u32 generation, const struct netc_endpoint *ep,
				    __u8 direction, const struct flow *original)
{
	__u16 door = ep->door[direction & 1];
	if (!(door & NETC_DOOR_GUARDED))
		return NETC_RULE_OPEN;
	const __u8 *peer = direction == NETC_INGRESS ? original->saddr : original->daddr;
	struct netc_policy_key key = {
		.generation = generation,
		.set = ep->set,
		.identity = identity_of(generation, original->family, peer),
		.direction = direction,
	};
	__u32 rule = lookup_rule(&key, door, original->protocol, original->dport);
	if (rule != NETC_RULE_NONE || !(door & NETC_DOOR_ANY_PEER))
		return rule;
	key.identity = NETC_IDENTITY_ANY;
	return lookup_rule(&key, door, original->protocol, original->dport);
}

static __always_inline struct netc_call_key call_key(__u32 ifindex, const struct flow *f)
{
	struct netc_call_key ck = {
		.ifindex = ifindex,
		.id = f->tcp_syn ? f->seq : f->sport,
		.family = f->family,
		.protocol = f->protocol,
	};
	return ck;
}

static __always_inline void report(__u32 generation, __u32 rule, const struct netc_endpoint *ep,
				   __u32 ifindex, __u8 direction, const struct flow *f, __u8 verdict,
				   __u8 reason)
{
	struct netc_event *ev = bpf_ringbuf_reserve(&netc_events, sizeof(*ev), 0);
	if (!ev) {
		count(NETC_STAT_EVENTS_LOST);
		return;
	}
	ev->time_ns = bpf_ktime_get_boot_ns();
	ev->generation = generation;
	ev->rule = rule;
	ev->endpoint = ep->id;
	ev->ifindex = ifindex;
	__builtin_memcpy(ev->saddr, f->saddr, 16);
	__builtin_memcpy(ev->daddr, f->daddr, 16);
	ev->sport = bpf_ntohs(f->sport);
	ev->dport = bpf_ntohs(f->dport);
	ev->family = f->family;
	ev->protocol = f->protocol;
	ev->direction = direction;
	ev->verdict = verdict;
	ev->reason = reason;
	ev->flags = 0;
	ev->frontend_port = 0;
	ev->service = NETC_SERVICE_NONE;
	__builtin_memset(ev->frontend, 0, 16);
	if (f->translated) {
		ev->flags = NETC_EVENT_SERVICE;
		struct netc_call_key ck = call_key(ifindex, f);
		struct netc_call *call = bpf_map_lookup_elem(&netc_service_calls, &ck);
		if (call) {
			ev->service = call->service;
			ev->frontend_port = bpf_ntohs(call->port);
			__builtin_memcpy(ev->frontend, call->frontend, 16);
			__builtin_memcpy(ev->saddr, call->client, 16);
		}
	}
	bpf_ringbuf_submit(ev, 0);
}

/* What a door says of a flow, before anything is remembered, counted or reported. */
struct judgement {
	const struct netc_endpoint *ep;
	__u32 generation;
	__u32 epoch;
	__u32 rule;
	__u8 direction;
	__u8 verdict; /* NETC_VERDICT_* */
	__u32 service; /* with NETC_RULE_SERVICE: the Service called */
};

/* Judge a flow at a door of interface `ifindex`: `original` is the flow in the direction of its
 * first packet through the door. False when the interface is no endpoint of this generation
 * (being attached or detached): not ours to judge. */
static __always_inline int assess(__u32 ifindex, const struct netc_config *cfg, __u8 direction,
				  const struct flow *original, struct judgement *j)
{
	j->generation = cfg->generation;
	j->epoch = cfg->epoch;
	struct netc_endpoint_key ek = { .generation = j->generation, .ifindex = ifindex };
	j->ep = bpf_map_lookup_elem(&netc_endpoints, &ek);
	if (!j->ep)
		return 0;
	j->direction = direction;
	if (direction == NETC_INGRESS && original->from_node &&
	    ((j->ep->door[NETC_INGRESS] & NETC_DOOR_GUARDED) || (j->ep->flags & NETC_EP_FAIL_CLOSED)))
		/* The node's rule needs no map a fail-closed endpoint may lack: it holds there too. */
		j->rule = NETC_RULE_NODE;
	else if (j->ep->flags & NETC_EP_FAIL_CLOSED)
		j->rule = NETC_RULE_FAIL_CLOSED;
	else if (direction == NETC_EGRESS && !original->translated &&
		 (cfg->flags & NETC_CONFIG_SERVICES) && (j->ep->door[NETC_EGRESS] & NETC_DOOR_GUARDED) &&
		 (j->service = frontend_of(j->generation, original)) != NETC_SERVICE_NONE)
		/* A Service call: judged after the translation (netc_to_pod, netc_uplink). */
		j->rule = NETC_RULE_SERVICE;
	else
		j->rule = decide(j->generation, j->ep, direction, original);
	j->verdict = NETC_VERDICT_ALLOW;
	if (j->rule == NETC_RULE_NONE || j->rule == NETC_RULE_FAIL_CLOSED)
		j->verdict = (j->ep->flags & NETC_EP_AUDIT) ? NETC_VERDICT_AUDIT : NETC_VERDICT_DENY;
	return 1;
}

/* What the classifiers' inner functions return for a Service call to let through at the client's
 * veth: TC_ACT_OK, with the Service mark bit set (classify does that). */
#define NETC_PASS_SERVICE 0x100

/* Remember a Service call's frontend and client for the verdict after the translation. */
static __always_inline void note_call(__u32 ifindex, const struct flow *f, __u32 service)
{
	struct netc_call_key ck = call_key(ifindex, f);
	struct netc_call call = { .service = service, .port = f->dport, .sport = f->sport };
	__builtin_memcpy(call.client, f->saddr, 16);
	__builtin_memcpy(call.frontend, f->daddr, 16);
	bpf_map_update_elem(&netc_service_calls, &ck, &call, BPF_ANY);
}

/* Count and report a judgement (the conntrack side is done) and say what to do with the packet. */
static __always_inline int settle(__u32 ifindex, const struct netc_config *cfg,
				  const struct flow *original, const struct judgement *j, __u8 reason)
{
	if (j->verdict == NETC_VERDICT_DENY) {
		count(NETC_STAT_DROPPED);
		report(j->generation, j->rule, j->ep, ifindex, j->direction, original, j->verdict, reason);
		return TC_ACT_SHOT;
	}
	if (j->verdict == NETC_VERDICT_AUDIT) {
		count(NETC_STAT_AUDITED);
		report(j->generation, j->rule, j->ep, ifindex, j->direction, original, j->verdict, reason);
		return TC_ACT_OK;
	}
	__u32 rule = j->rule;
	if (rule == NETC_RULE_SERVICE) {
		/* Counted and reported where it is judged, after the translation. */
		note_call(ifindex, original, j->service);
		return NETC_PASS_SERVICE;
	}
	count(NETC_STAT_PASSED_NEW);
	if (rule < NETC_MAX_RULES) {
		__u64 *n = bpf_map_lookup_elem(&netc_rule_counters, &rule);
		if (n)
			*n += 1;
	}
	if (rule != NETC_RULE_OPEN && (cfg->flags & NETC_CONFIG_REPORT_ALLOWED))
		report(j->generation, rule, j->ep, ifindex, j->direction, original, j->verdict, reason);
	return TC_ACT_OK;
}

static __always_inline void stamp(struct netc_ct_value *v, const struct judgement *j,
				  const struct flow *f)
{
	v->generation = j->generation;
	v->epoch = j->epoch;
	v->rule = j->rule;
	/* A TCP Service call waits for its judgement after the translation (netc_settle_call). */
	v->verdict = (j->rule == NETC_RULE_SERVICE && f->tcp_syn) ? NETC_VERDICT_PENDING : j->verdict;
	v->pad = 0;
}

/* Whether an entry lets the replies of its flow through (a pending Service call's does not). */
static __always_inline int answerable(const struct netc_ct_value *v)
{
	return v->verdict != NETC_VERDICT_PENDING;
}

/* Whether a remembered flow was judged by the live state. */
static __always_inline int current(const struct netc_ct_value *v, const struct netc_config *cfg)
{
	return v->generation == cfg->generation && v->epoch == cfg->epoch;
}

/* A conntrack key and where its set starts. */
struct ct_ref {
	struct netc_ct_key key;
	__u32 first;
};

/*
 * Judge a flow at a door and remember the verdict. `ct` is its conntrack key (hook = the door)
 * and `known` its slot when it has one (judged under an older state): that slot is stamped
 * again when the flow still passes, and forgotten when it does not.
 */
static __always_inline int judge(__u32 ifindex, const struct netc_config *cfg,
				 const struct flow *original, struct ct_ref *ct,
				 struct netc_ct_slot *known)
{
	struct judgement j;
	if (!assess(ifindex, cfg, ct->key.hook, original, &j)) {
		if (known)
			ct_forget(known, &ct->key);
		return TC_ACT_OK;
	}
	if (j.verdict == NETC_VERDICT_DENY) {
		if (known)
			ct_forget(known, &ct->key);
	} else {
		struct netc_ct_value entry = {};
		stamp(&entry, &j, original);
		__u16 now = ct_now();
		struct netc_ct_slot *found = known;
		if (!found) {
			int inserted = ct_insert(&netc_conntrack, &ct->key, ct->first, &entry, now, &found);
			if (inserted == NETC_CT_EVICTED)
				count(NETC_STAT_CT_EVICTED);
			if (inserted != NETC_CT_EXISTS)
				found = NULL;
		}
		if (found)
			ct_update(found, &ct->key, &entry, now);
	}
	return settle(ifindex, cfg, original, &j, known ? NETC_REASON_REJUDGE : NETC_REASON_NEW);
}

/* judge_syn's answer when the flow has an entry already: judge it the long way. */
#define NETC_KNOWN_FLOW (-1)

/*
 * A TCP SYN opens a connection: never a reply, and almost always unknown. Judge it first and
 * insert it (the insert looks at its set once: a flow already there is found on the way), so an
 * allowed new connection reads its set once. A flow with an entry already (a retransmitted SYN,
 * a reused port) gets NETC_KNOWN_FLOW and the same treatment as any packet of a known flow.
 */
static __always_inline int judge_syn(__u32 ifindex, const struct netc_config *cfg,
				     const struct flow *f, struct ct_ref *ct)
{
	struct judgement j;
	ct_prefetch(&netc_conntrack, ct->first);
	if (!assess(ifindex, cfg, ct->key.hook, f, &j))
		return NETC_KNOWN_FLOW; /* rare: let the lookup decide what to forget */
	if (j.verdict != NETC_VERDICT_DENY) {
		struct netc_ct_value entry = {};
		stamp(&entry, &j, f);
		struct netc_ct_slot *found = NULL;
		int inserted = ct_insert(&netc_conntrack, &ct->key, ct->first, &entry, ct_now(), &found);
		if (inserted == NETC_CT_EXISTS)
			return NETC_KNOWN_FLOW;
		if (inserted == NETC_CT_EVICTED)
			count(NETC_STAT_CT_EVICTED);
		return settle(ifindex, cfg, f, &j, NETC_REASON_NEW);
	}
	/* Denied: a flow remembered by the live state still passes, an older one is forgotten. */
	struct netc_ct_value known;
	struct netc_ct_slot *slot = ct_find(&netc_conntrack, &ct->key, ct->first, &known);
	if (slot && current(&known, cfg))
		return TC_ACT_OK;
	if (slot)
		ct_forget(slot, &ct->key);
	return settle(ifindex, cfg, f, &j, slot ? NETC_REASON_REJUDGE : NETC_REASON_NEW);
}

static __always_inline void ct_key_of(const struct flow *f, __u32 ifindex, __u8 hook,
				      const struct netc_config *cfg, struct ct_ref *ct)
{
	__builtin_memcpy(ct->key.saddr, f->saddr, 16);
	__builtin_memcpy(ct->key.daddr, f->daddr, 16);
	ct->key.sport = f->sport;
	ct->key.dport = f->dport;
	ct->key.ifindex = ifindex;
	ct->key.family = f->family;
	ct->key.protocol = f->protocol;
	ct->key.hook = hook;
	ct->key.pad = 0;
	ct->first = ct_first_slot(&ct->key, cfg->ct_sets, cfg->ct_seed);
}

static __always_inline void reverse(const struct flow *f, struct flow *r)
{
	__builtin_memcpy(r->saddr, f->daddr, 16);
	__builtin_memcpy(r->daddr, f->saddr, 16);
	r->sport = f->dport;
	r->dport = f->sport;
	r->family = f->family;
	r->protocol = f->protocol;
}

/* A packet of a remembered flow: pass it when the live state judged it (and note that it was
 * used now), else judge it again. */
static __always_inline int remembered(__u32 ifindex, const struct netc_config *cfg,
				      const struct flow *original, struct ct_ref *ct,
				      struct netc_ct_slot *slot, const struct netc_ct_value *value)
{
	if (current(value, cfg)) {
		__u16 now = ct_now();
		if (value->stamp != now)
			slot->value.stamp = now; /* a hint for eviction, read by no judgement */
		/* A Service call's packets are judged again after the translation (a reply of one
		 * passes: classify marks packets leaving the pod only). */
		return value->rule == NETC_RULE_SERVICE ? NETC_PASS_SERVICE : TC_ACT_OK;
	}
	return judge(ifindex, cfg, original, ct, slot);
}

/* The verdict on a parsed IP packet at one door (`hook`) of interface `ifindex`. */
static __always_inline int classify_flow(__u32 ifindex, __u8 hook, const struct flow *f)
{
	__u32 zero = 0;
	struct netc_config *cfg = bpf_map_lookup_elem(&netc_config, &zero);
	if (!cfg || cfg->generation == 0)
		return TC_ACT_OK;

	struct ct_ref ct = {};
	ct_key_of(f, ifindex, hook, cfg, &ct);
	if (f->tcp_syn) {
		int verdict = judge_syn(ifindex, cfg, f, &ct);
		if (verdict != NETC_KNOWN_FLOW)
			return verdict;
	}

	/* A packet of a flow that started through this door... */
	struct netc_ct_value value;
	struct netc_ct_slot *slot = ct_find(&netc_conntrack, &ct.key, ct.first, &value);
	if (slot)
		return remembered(ifindex, cfg, f, &ct, slot, &value);

	/* ...or a reply of one that entered through the other door of this interface (a SYN
	 * never is; nor is anything before a Service call is allowed after its translation)... */
	if (!f->tcp_syn) {
		struct flow original = {};
		reverse(f, &original);
		struct ct_ref reply = {};
		ct_key_of(&original, ifindex, hook ^ 1, cfg, &reply);
		slot = ct_find(&netc_conntrack, &reply.key, reply.first, &value);
		if (slot && answerable(&value))
			return remembered(ifindex, cfg, &original, &reply, slot, &value);
	}

	/* ...or the first packet of a new flow. */
	return judge(ifindex, cfg, f, &ct, NULL);
}

/* classify_flow as a function of its own (a global function: verified once, on its own), so
 * that a classifier's stack holds its parsed packet and either judgement, never both at once
 * (the verifier's limit is 512 bytes for the deepest chain of calls). */
__attribute__((noinline)) int netc_classify_flow(__u32 ifindex, __u32 hook, const struct flow *f)
{
	if (!f)
		return TC_ACT_OK;
	return classify_flow(ifindex, (__u8)hook, f);
}

/*
 * A TCP Service call's SYN was judged after the translation (`allowed`: it passes): its pending
 * entry at the client's veth, found through the call's record, becomes an allowed one, or is
 * forgotten. A global function: its own frame, beside netc_judge_translated's.
 */
__attribute__((noinline)) int netc_settle_call(__u32 client, const struct flow *f, __u32 allowed)
{
	if (!f)
		return 0;
	__u32 zero = 0;
	struct netc_config *cfg = bpf_map_lookup_elem(&netc_config, &zero);
	if (!cfg)
		return 0;
	struct netc_call_key ck = call_key(client, f);
	struct netc_call *call = bpf_map_lookup_elem(&netc_service_calls, &ck);
	if (!call)
		return 0;
	struct flow untranslated = {};
	__builtin_memcpy(untranslated.saddr, call->client, 16);
	__builtin_memcpy(untranslated.daddr, call->frontend, 16);
	untranslated.sport = call->sport;
	untranslated.dport = call->port;
	untranslated.family = f->family;
	untranslated.protocol = f->protocol;
	struct ct_ref ct = {};
	ct_key_of(&untranslated, client, NETC_EGRESS, cfg, &ct);
	struct netc_ct_value value;
	struct netc_ct_slot *slot = ct_find(&netc_conntrack, &ct.key, ct.first, &value);
	if (!slot || value.rule != NETC_RULE_SERVICE || value.verdict != NETC_VERDICT_PENDING)
		return 0;
	if (!allowed) {
		ct_forget(slot, &ct.key);
		return 0;
	}
	value.verdict = NETC_VERDICT_ALLOW;
	ct_update(slot, &ct.key, &value, ct_now());
	return 1;
}

/*
 * A packet after kube-proxy's translation, at a tc egress hook: when it carries the Service mark,
 * judge its client's egress door (the endpoint of the interface it came in on) on the translated
 * destination, and clear the mark (a tunnel's outer packet is not the call). TC_ACT_SHOT when that
 * door denies it.
 */
__attribute__((noinline)) int netc_judge_translated(struct __sk_buff *skb, struct flow *f)
{
	/* A global function: the verifier checks it once, on its own, instead of once more inside
	 * each classifier beside the door's own judgement (which made netc_to_pod too big). */
	if (!f)
		return TC_ACT_OK;
	__u32 zero = 0;
	struct netc_config *cfg = bpf_map_lookup_elem(&netc_config, &zero);
	if (!cfg || !cfg->service_mark || !(skb->mark & cfg->service_mark))
		return TC_ACT_OK;
	skb->mark &= ~cfg->service_mark;
	__u32 client = skb->ingress_ifindex;
	if (client == 0)
		return TC_ACT_OK;
	f->translated = 1;
	int verdict = classify_flow(client, NETC_EGRESS, f);
	f->translated = 0;
	if (f->tcp_syn)
		netc_settle_call(client, f, verdict != TC_ACT_SHOT);
	return verdict == TC_ACT_SHOT ? TC_ACT_SHOT : TC_ACT_OK;
}

static __always_inline int classify(struct __sk_buff *skb, __u8 hook)
{
	struct flow f = {};
	enum parse_result parsed = parse(skb, &f);
	if (parsed != PARSE_IP) {
		if (parsed == PARSE_NOT_IP)
			count(NETC_STAT_NOT_IP);
		return TC_ACT_OK;
	}
	if (hook == NETC_INGRESS && netc_judge_translated(skb, &f) == TC_ACT_SHOT)
		return TC_ACT_SHOT;
	/* ingress_ifindex is 0 only for packets the node's own stack made (never set at tc ingress,
	 * where it is this interface). */
	f.from_node = hook == NETC_INGRESS && skb->ingress_ifindex == 0;
	int verdict = netc_classify_flow(skb->ifindex, hook, &f);
	if (verdict == NETC_PASS_SERVICE) {
		__u32 zero = 0;
		struct netc_config *cfg = bpf_map_lookup_elem(&netc_config, &zero);
		if (cfg && hook == NETC_EGRESS)
			skb->mark |= cfg->service_mark;
		return TC_ACT_OK;
	}
	return verdict;
}

SEC("classifier/from_pod")
int netc_from_pod(struct __sk_buff *skb)
{
	return classify(skb, NETC_EGRESS);
}

SEC("classifier/to_pod")
int netc_to_pod(struct __sk_buff *skb)
{
	return classify(skb, NETC_INGRESS);
}

SEC("classifier/uplink")
int netc_uplink(struct __sk_buff *skb)
{
	if (!skb->mark) /* most packets: no Service call (and no mark at all) */
		return TC_ACT_OK;
	struct flow f = {};
	if (parse(skb, &f) != PARSE_IP)
		return TC_ACT_OK;
	return netc_judge_translated(skb, &f);
}
