// SPDX-License-Identifier: Apache-2.0
/*
 * Benchmark-only object: the real datapath (netc.c, included whole) plus one program that
 * judges 64 *new* flows per run. BPF_PROG_TEST_RUN repeats one packet, which after its first
 * run is an established flow; this program varies the source port itself so every iteration
 * takes the new-flow path (lookups, policy, conntrack insert) with warm caches, as a busy node
 * would. Never attached to an interface; runtime/src/abi.rs embeds it for benches/ only.
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

static long bench_one(__u32 index, void *data)
{
	struct bench_ctx *c = data;
	c->flow.sport = bpf_htons((__u16)(c->base + index));
	if (classify_flow(c->ifindex, NETC_INGRESS, &c->flow) == TC_ACT_OK)
		c->passed++;
	return 0;
}

SEC("classifier/bench_new_flows")
int netc_bench_new_flows(struct __sk_buff *skb)
{
	struct bench_ctx c = {};
	if (parse(skb, &c.flow) != PARSE_IP)
		return TC_ACT_SHOT;
	__u32 zero = 0;
	__u32 *next = bpf_map_lookup_elem(&netc_bench_next, &zero);
	if (!next)
		return TC_ACT_SHOT;
	c.base = *next;
	*next += NETC_BENCH_FLOWS;
	c.ifindex = skb->ifindex;
	bpf_loop(NETC_BENCH_FLOWS, bench_one, &c, 0);
	return c.passed == NETC_BENCH_FLOWS ? TC_ACT_OK : TC_ACT_SHOT;
}
