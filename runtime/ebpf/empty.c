// SPDX-License-Identifier: Apache-2.0
/* The baseline for benchmarks: a classifier that only says "pass". */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("classifier")
int netc_empty(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}
