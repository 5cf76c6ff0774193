// SPDX-License-Identifier: Apache-2.0
/*
 * Benchmark-only object: the real datapath (netc.c, included whole) plus one program that
 * judges 64 *new* flows per run. BPF_PROG_TEST_RUN repeats one packet, which after its first
 * run is an established flow; this program varies the source port itself so every iteration
 * takes the new-flow path (lookups, policy, conntrack insert) with warm caches, as a busy node
 * would. A second program inserts fresh keys into the conntrack map and does nothing else: the
 * floor an allowed new flow cannot go below. Never attached to an interface; runtime/src/abi.rs
 * embeds it for benches/ only.
 */
#include "netc.c"

#define NETC_BENCH_FLOWS 64

/* netc_bench_next[0] (array): the next source port to use, so runs never repeat a flow. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} netc_bench_next SEC(".maps");

struct bench_ctx {
	struct flow flow;
	__u32 ifindex;
	__u32 base;
	__u32 passed;
};

/* One new flow through the classifier: the context's flow from source port base + index. A
 * global function, so the verifier checks it once, on its own, instead of once per state of the
 * loop that calls it (inlined in the loop callback, the classifier used most of the verifier's
 * one-million-instruction budget). */
__attribute__((noinline)) int netc_bench_classify(struct bench_ctx *c, __u32 index)
{
	if (!c)
		return TC_ACT_SHOT;
	c->flow.sport = bpf_htons((__u16)(c->base + index));
	return classify_flow(c->ifindex, NETC_INGRESS, &c->flow);
}

static long bench_one(__u32 index, void *data)
{
	struct bench_ctx *c = data;
	if (netc_bench_classify(c, index) == TC_ACT_OK)
		c->passed++;
	return 0;
}

/* Parse the probe packet into a context whose source ports start at netc_bench_next[0]. */
static __always_inline int bench_start(struct __sk_buff *skb, struct bench_ctx *c)
{
	if (parse(skb, &c->flow) != PARSE_IP)
		return 0;
	__u32 zero = 0;
	__u32 *next = bpf_map_lookup_elem(&netc_bench_next, &zero);
	if (!next)
		return 0;
	c->base = *next;
	*next += NETC_BENCH_FLOWS;
	c->ifindex = skb->ifindex;
	return 1;
}

SEC("classifier/bench_new_flows")
int netc_bench_new_flows(struct __sk_buff *skb)
{
	struct bench_ctx c = {};
	if (!bench_start(skb, &c))
		return TC_ACT_SHOT;
	bpf_loop(NETC_BENCH_FLOWS, bench_one, &c, 0);
	return c.passed == NETC_BENCH_FLOWS ? TC_ACT_OK : TC_ACT_SHOT;
}

/* The conntrack insert an allowed TCP SYN makes (a fresh key: its set looked at once, a slot
 * written), alone. */
__attribute__((noinline)) int netc_bench_insert(struct bench_ctx *c, __u32 index)
{
	if (!c)
		return 0;
	__u32 zero = 0;
	struct netc_config *cfg = bpf_map_lookup_elem(&netc_config, &zero);
	if (!cfg)
		return 0;
	c->flow.sport = bpf_htons((__u16)(c->base + index));
	struct ct_ref ct = {};
	ct_key_of(&c->flow, c->ifindex, NETC_INGRESS, cfg, &ct);
	struct netc_ct_value entry = { .generation = 1, .verdict = NETC_VERDICT_ALLOW };
	struct netc_ct_slot *found = NULL;
	int inserted = ct_insert(&netc_conntrack, &ct.key, ct.first, &entry, ct_now(), &found);
	return inserted == NETC_CT_INSERTED || inserted == NETC_CT_EVICTED;
}

static long bench_insert_one(__u32 index, void *data)
{
	struct bench_ctx *c = data;
	c->passed += netc_bench_insert(c, index);
	return 0;
}

SEC("classifier/bench_conntrack_insert")
int netc_bench_conntrack_insert(struct __sk_buff *skb)
{
	struct bench_ctx c = {};
	if (!bench_start(skb, &c))
		return TC_ACT_SHOT;
	bpf_loop(NETC_BENCH_FLOWS, bench_insert_one, &c, 0);
	return c.passed == NETC_BENCH_FLOWS ? TC_ACT_OK : TC_ACT_SHOT;
}

/*
 * Memory alone: a read and a 64-byte write at a pseudo-random slot of a 262,144-slot array of
 * 128-byte slots (32 MiB, what the kernel's LRU hash of that many flows took). No hashing of a
 * real key, no locks, no lists. The accesses of one run are independent, so their misses overlap:
 * this is the memory's throughput for a table that size, not the latency of one miss.
 */
#define NETC_BENCH_TABLE_SLOTS (1u << 18)

struct bench_slot {
	__u64 words[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NETC_BENCH_TABLE_SLOTS);
	__type(key, __u32);
	__type(value, struct bench_slot);
} netc_bench_table SEC(".maps");

static long bench_touch_one(__u32 index, void *data)
{
	struct bench_ctx *c = data;
	/* Fibonacci hashing of a never-repeating counter: consecutive flows land far apart. */
	__u32 slot = ((c->base + index) * 2654435761u) >> (32 - 18);
	struct bench_slot *s = bpf_map_lookup_elem(&netc_bench_table, &slot);
	if (!s)
		return 1;
	/* A table must read the slot (is the flow there?) before it writes it. */
	if (s->words[0] == (__u64)-1)
		return 1;
#pragma unroll
	for (int i = 0; i < 8; i++)
		s->words[i] = c->base + index + i;
	c->passed++;
	return 0;
}

SEC("classifier/bench_table_touch")
int netc_bench_table_touch(struct __sk_buff *skb)
{
	struct bench_ctx c = {};
	if (!bench_start(skb, &c))
		return TC_ACT_SHOT;
	bpf_loop(NETC_BENCH_FLOWS, bench_touch_one, &c, 0);
	return c.passed == NETC_BENCH_FLOWS ? TC_ACT_OK : TC_ACT_SHOT;
}
