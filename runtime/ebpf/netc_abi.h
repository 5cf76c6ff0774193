/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The structures shared by the C datapath (netc.c) and netcd (runtime/src/abi.rs).
 *
 * Every struct has explicit padding and no bool, so both compilers lay it out the same way;
 * runtime/tests/abi_layout.rs compares sizeof/offsetof printed by layout.c with Rust's view.
 * Change one side, change the other, and the test says where they disagree.
 *
 * Generations: every key that describes policy carries the generation it belongs to. netcd
 * writes a whole new generation beside the live one, flips `netc_config.generation` in one map
 * write, then deletes the old generation. A packet reads the generation once and sees either
 * the old state or the new one, never a mix.
 *
 * Policy sets: policy keys name a policy set, not an endpoint. Local pods selected by the same
 * guarded doors share one set of entries, so a replica (or a pod relabelled into a selection
 * some pod here has) is one endpoint write.
 *
 * Epochs: pods added, removed or relabelled are changed in place, in the live generation, when
 * no rule's meaning changes: new policy entries first (a new identity's, or a new set's: no
 * address maps to the identity yet, no endpoint names the set yet), then endpoint and ipcache
 * entries, each one map write that a packet sees whole or not at all (a packet reads one
 * endpoint and one peer address). When such a change can turn an allowed
 * flow into a denied one (a pod removed or changed), netcd then advances `netc_config.epoch` in
 * one map write. Conntrack entries carry the generation and the epoch that judged them; a
 * packet whose entry has another of either is judged again.
 */
#ifndef NETC_ABI_H
#define NETC_ABI_H

#include <linux/types.h>

/* Address families as stored in keys (not AF_* numbers, which differ from ethertypes). */
#define NETC_FAMILY_V4 4
#define NETC_FAMILY_V6 6

/* Directions of a pod's doors; also the index of door flags in struct netc_endpoint. */
#define NETC_INGRESS 0 /* into the pod: the host-side veth's tc egress hook */
#define NETC_EGRESS 1  /* out of the pod: the host-side veth's tc ingress hook */

/* Reserved identities. Every other identity is a set of peers rules can tell apart. */
#define NETC_IDENTITY_ANY 0   /* policy key wildcard: the rule names no peers (anyone) */
#define NETC_IDENTITY_WORLD 1 /* an address no peer of any rule matches */

/* Rule index values that are not rules. */
#define NETC_RULE_NONE 0xffffffffu /* denied: no rule allows it */
#define NETC_RULE_OPEN 0xfffffffeu /* the door is open (not isolated) */
#define NETC_RULE_FAIL_CLOSED 0xfffffffdu /* endpoint failed closed (its state did not fit) */
/* From the pod's own node (a packet the node's network stack made: kubelet probes, hostNetwork
 * pods): always let into the pod, as Kubernetes requires ("pods cannot block access from their
 * resident node"). Remembered like a rule, so the replies pass the pod's egress door. */
#define NETC_RULE_NODE 0xfffffffcu
/* A call to a Service frontend (a ClusterIP or a NodePort) at the client's egress door: not judged
 * there but after kube-proxy's translation, at the first tc egress hook the translated packet
 * reaches (the backend's veth or an uplink), on the backend and its targetPort. Remembered at the
 * client's veth under the untranslated tuple, so that the replies (which netfilter translates
 * back before they reach the veth) pass. */
#define NETC_RULE_SERVICE 0xfffffffbu

/* struct netc_event.service when the flow did not go through a Service (or its frontend is not
 * known any more). */
#define NETC_SERVICE_NONE 0xffffffffu

/* struct netc_endpoint.door[] bits: what kinds of policy entries exist for the door, so the
 * classifier only looks up the kinds that can match. */
#define NETC_DOOR_GUARDED (1u << 0)    /* isolated: only policy entries pass */
#define NETC_DOOR_ANY_PEER (1u << 1)   /* some entry has identity ANY */
#define NETC_DOOR_ANY_PROTO (1u << 2)  /* some entry has protocol 0 (all protocols, all ports) */
#define NETC_DOOR_ANY_PORT (1u << 3)   /* some entry has port 0 (all ports of one protocol) */
#define NETC_DOOR_RANGES (1u << 4)     /* some entry is a port range, in netc_port_ranges */

/* struct netc_endpoint.flags bits. */
#define NETC_EP_AUDIT (1u << 0)       /* would-be drops pass and are reported as audit */
#define NETC_EP_FAIL_CLOSED (1u << 1) /* state did not fit in the maps: drop everything */

/* Verdicts in events and conntrack entries. */
#define NETC_VERDICT_ALLOW 1
#define NETC_VERDICT_DENY 2
#define NETC_VERDICT_AUDIT 3
/* Only in a conntrack entry: a TCP Service call's SYN remembered at the client's egress door, not
 * judged yet after the translation. Its packets pass (marked, judged after the translation), but
 * nothing passes the client's ingress door as its reply until that judgement allows it (then
 * NETC_VERDICT_ALLOW; a denial forgets it). */
#define NETC_VERDICT_PENDING 4

/* Why an event was sent. */
#define NETC_REASON_NEW 1     /* first packet of a flow at this door */
#define NETC_REASON_REJUDGE 2 /* a flow judged under an older generation, judged again */

/* Indexes into netc_stats (per-CPU u64 counters). */
#define NETC_STAT_PASSED_ESTABLISHED 0 /* reserved: the established path counts nothing, to stay short */
#define NETC_STAT_PASSED_NEW 1
#define NETC_STAT_DROPPED 2
#define NETC_STAT_AUDITED 3
#define NETC_STAT_EVENTS_LOST 4
#define NETC_STAT_NOT_IP 5
#define NETC_STAT_CT_EVICTED 6 /* flows pushed out of a full conntrack set by a new one */
#define NETC_STAT_COUNT 8

/* netc_config[0]: the live generation and epoch. A flip writes a new generation and keeps the
 * epoch; an in-place change that needs flows judged again writes a new epoch and keeps the
 * generation: one field changes per write, so a packet never pairs a new one with an old one. */
struct netc_config {
	__u32 generation;
	__u32 flags; /* NETC_CONFIG_* */
	__u32 epoch;
	__u32 ct_sets; /* sets of netc_conntrack: its slots / NETC_CT_WAYS, a power of two */
	__u64 ct_seed; /* the conntrack hash's secret seed, chosen once when the maps are made */
	__u32 service_mark; /* the skb->mark bit of Service calls to judge after translation (0: none) */
	__u32 pad;
};

/* Report allowed new flows as events too (denied and audited flows are always reported). */
#define NETC_CONFIG_REPORT_ALLOWED (1u << 0)
/* netc_frontends holds this generation's Service frontends: calls to them are judged after
 * kube-proxy's translation (set only when netcd has a classifier on the node's uplinks). */
#define NETC_CONFIG_SERVICES (1u << 1)

/* netc_endpoints key: one local pod's host-side interface in one generation. */
struct netc_endpoint_key {
	__u32 generation;
	__u32 ifindex;
};

struct netc_endpoint {
	__u32 id;      /* endpoint id (events name the pod by it) */
	__u32 flags;   /* NETC_EP_* */
	__u16 door[2]; /* NETC_DOOR_* per direction, indexed by NETC_INGRESS / NETC_EGRESS */
	__u32 set;     /* its policy set: the first field of its policy keys */
};

/* netc_ipcache key: one pod address (exact match) in one generation. */
struct netc_ip_key {
	__u32 generation;
	__u32 family;   /* NETC_FAMILY_* */
	__u8 addr[16];  /* IPv4 in the first 4 bytes, the rest zero */
};

/* netc_cidrs key (LPM trie): `prefixlen` counts bits from `generation` on, so it is
 * 64 + the CIDR's prefix length: generation and family always match exactly. */
struct netc_cidr_key {
	__u32 prefixlen;
	__u32 generation;
	__u32 family;
	__u8 addr[16];
};

/* netc_policy key (hash): an allowed (peer identity, protocol, port) at one door of the
 * endpoints of one policy set (local pods with the same selection share their entries).
 * identity 0 = any peer; protocol 0 = every protocol and port; port 0 = every port. */
struct netc_policy_key {
	__u32 generation;
	__u32 set;
	__u32 identity;
	__u8 direction; /* NETC_INGRESS / NETC_EGRESS */
	__u8 protocol;  /* IPPROTO_* */
	__u16 port;     /* network byte order */
};

/* netc_port_ranges key (LPM trie): like netc_policy_key, with the port last so that an aligned
 * block of a range is a prefix. prefixlen = 8 * 14 (the bytes from generation to port) + port bits. */
struct netc_range_key {
	__u32 prefixlen;
	__u32 generation;
	__u32 set;
	__u32 identity;
	__u8 direction;
	__u8 protocol;
	__u16 port; /* network byte order, so its high bits come first */
};

/* netc_frontends key (hash): a Service frontend kube-proxy translates, in one generation: a
 * ClusterIP (or external IP) and Service port, or a NodePort on every address of the node
 * (`addr` all zero). */
struct netc_frontend_key {
	__u32 generation;
	__u8 family;   /* NETC_FAMILY_* */
	__u8 protocol; /* IPPROTO_* */
	__u16 port;    /* network byte order */
	__u8 addr[16]; /* IPv4 in the first 4 bytes; all zero: a NodePort on any node address */
};

/* Value of netc_frontends. */
struct netc_frontend {
	__u32 service; /* netcd's index of the Service in this generation (events name it) */
	__u32 pad;
};

/* Value of netc_policy and netc_port_ranges: which rule allows it. */
struct netc_policy_value {
	__u32 rule; /* index into the IR's rules, in IR order */
	__u32 pad;
};

/* netc_conntrack key: a flow as seen at one hook of one interface. `hook` is the door it was
 * judged at, so an entry made at the sender's egress never lets the packet skip the receiver's
 * ingress (another interface, another door). */
struct netc_ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* network byte order */
	__u16 dport; /* network byte order */
	__u32 ifindex;
	__u8 family;
	__u8 protocol;
	__u8 hook; /* NETC_INGRESS / NETC_EGRESS: the door the flow's first packet went through */
	__u8 pad;
};

struct netc_ct_value {
	__u32 generation; /* the generation and epoch that judged it: when either differs from the */
	__u32 epoch;      /* live one, the flow is judged again */
	__u32 rule;
	__u8 verdict; /* NETC_VERDICT_ALLOW, NETC_VERDICT_AUDIT or NETC_VERDICT_PENDING */
	__u8 pad;
	__u16 stamp; /* when it was last used, in coarse seconds (2^30 ns) modulo 2^16 */
};

/* Slots of one conntrack set: a key can only be in the NETC_CT_WAYS slots of its set. */
#define NETC_CT_WAYS 4

/* One slot of netc_conntrack (an array of them, in sets of NETC_CT_WAYS; conntrack.h). `seq` is
 * odd while a CPU writes the slot; a slot whose key has family 0 is empty. 64 bytes: a cache
 * line. */
struct netc_ct_slot {
	__u32 seq;
	struct netc_ct_key key;
	struct netc_ct_value value;
};

/* The conntrack hash of a key (the 44 bytes as eleven 32-bit words, mixed two at a time) with a
 * secret seed: a key's set is the high half's low bits. Here, not in conntrack.h, so that the
 * layout printer can check runtime/src/abi.rs computes the same. */
static inline __attribute__((always_inline)) __u64 ct_hash(const struct netc_ct_key *k, __u64 seed)
{
	const __u32 *w = (const __u32 *)k;
	__u64 h = seed ^ 0x9e3779b97f4a7c15ull;
#pragma unroll
	for (int i = 0; i < 10; i += 2) {
		h ^= ((__u64)w[i] << 32) | w[i + 1];
		h *= 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	h ^= w[10];
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 29;
	return h;
}

/* struct netc_event.flags: the flow is a Service call judged after kube-proxy's translation
 * (`service` and `frontend` say which, when the call was remembered). */
#define NETC_EVENT_SERVICE (1u << 0)

/* One verdict, sent on netc_events. */
struct netc_event {
	__u64 time_ns; /* bpf_ktime_get_boot_ns() */
	__u32 generation;
	__u32 rule;
	__u32 endpoint;
	__u32 ifindex;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* host byte order */
	__u16 dport; /* host byte order */
	__u8 family;
	__u8 protocol;
	__u8 direction;
	__u8 verdict;
	__u8 reason;
	__u8 flags;          /* NETC_EVENT_* */
	__u16 frontend_port; /* host byte order: the Service port called, when `service` is one */
	__u32 service;       /* the Service the flow went through, or NETC_SERVICE_NONE */
	__u8 frontend[16];   /* the frontend address called (the ClusterIP, the node's address) */
};

#endif
