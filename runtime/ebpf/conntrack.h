/* SPDX-License-Identifier: Apache-2.0 */
/*
 * netc's conntrack: a set-associative flow table in a BPF array (see netc_abi.h, struct
 * netc_ct_slot). A key hashes (with a secret seed) to a set of NETC_CT_WAYS consecutive slots;
 * a lookup compares at most that many keys, an insert takes an empty slot of the set or the one
 * used least recently. Writers claim a slot by making its sequence odd with a compare-and-swap
 * (a claimed slot is skipped: the flow is then simply not remembered, and judged again later)
 * and release it by making it even again; readers copy a slot and keep the copy only when its
 * sequence was even and unchanged around the copy. So a reader never takes half of one flow
 * and half of another, and two writers never write one slot at once.
 *
 * Why not the kernel's LRU hash: its insert cost ~190 ns at 262,144 entries on the machines
 * netc is measured on (bucket lock, chain walk, LRU list moves: several dependent accesses to
 * cold memory); this table's costs ~110 ns there, ~60 ns at the 65,536 entries of a 2-CPU node
 * (docs/performance.md).
 */
#ifndef NETC_CONNTRACK_H
#define NETC_CONNTRACK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "netc_abi.h"

#define NETC_READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define NETC_BARRIER() asm volatile("" ::: "memory")

/* What ct_insert did. */
#define NETC_CT_INSERTED 0
#define NETC_CT_EXISTS 1  /* the key has a slot already (returned in *found) */
#define NETC_CT_SKIPPED 2 /* the chosen slot was being written by another CPU: not remembered */
#define NETC_CT_EVICTED 3 /* inserted in place of the flow of its set used least recently */

static __always_inline int ct_key_eq(const struct netc_ct_key *a, const struct netc_ct_key *b)
{
	const __u32 *x = (const __u32 *)a;
	const __u32 *y = (const __u32 *)b;
	__u32 diff = 0;
#pragma unroll
	for (int i = 0; i < 11; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

/* The first slot of the key's set; `sets` (a power of two) and `seed` come from netc_config. */
static __always_inline __u32 ct_first_slot(const struct netc_ct_key *k, __u32 sets, __u64 seed)
{
	return ((__u32)(ct_hash(k, seed) >> 32) & (sets - 1)) * NETC_CT_WAYS;
}

/* How often a reader looks again at a slot another CPU is writing (a writer holds a slot for a
 * few dozen instructions) before it takes the flow for unknown. */
#define NETC_CT_READ_TRIES 3

/* Read slot `s` for key `k`: 1 with a whole copy of its value in *out when it holds `k`, 0 when
 * it holds another flow, -1 when it was being written each time it was looked at. */
static __always_inline int ct_read_slot(struct netc_ct_slot *s, const struct netc_ct_key *k,
					struct netc_ct_value *out)
{
#pragma unroll
	for (int attempt = 0; attempt < NETC_CT_READ_TRIES; attempt++) {
		__u32 seq = NETC_READ_ONCE(s->seq);
		if (seq & 1)
			continue;
		NETC_BARRIER();
		if (!ct_key_eq(&s->key, k)) {
			NETC_BARRIER();
			if (NETC_READ_ONCE(s->seq) == seq)
				return 0;
			continue;
		}
		__builtin_memcpy(out, &s->value, sizeof(*out));
		NETC_BARRIER();
		if (NETC_READ_ONCE(s->seq) == seq)
			return 1;
	}
	return -1;
}

/* The slot holding `k` in `map` (its set starting at `first`), with a whole copy of its value in
 * *out; NULL when the flow is not remembered (or its slot was being written throughout). */
static __always_inline struct netc_ct_slot *ct_find(void *map, const struct netc_ct_key *k,
						    __u32 first, struct netc_ct_value *out)
{
#pragma unroll
	for (__u32 way = 0; way < NETC_CT_WAYS; way++) {
		__u32 index = first + way;
		struct netc_ct_slot *s = bpf_map_lookup_elem(map, &index);
		if (!s)
			return NULL;
		if (ct_read_slot(s, k, out) == 1)
			return s;
	}
	return NULL;
}

/*
 * Start reading the set at `first` and go on without waiting: the loads are volatile, so they
 * are made, and nothing uses them, so the CPU runs the code after them (the judgement of a new
 * flow) while the set comes from memory. A set of a big table is rarely in the cache; fetching
 * it alongside the judgement instead of after it took about 20 ns off a new flow at 262,144
 * entries (docs/performance.md).
 */
static __always_inline void ct_prefetch(void *map, __u32 first)
{
#pragma unroll
	for (__u32 way = 0; way < NETC_CT_WAYS; way++) {
		__u32 index = first + way;
		struct netc_ct_slot *s = bpf_map_lookup_elem(map, &index);
		if (s)
			(void)NETC_READ_ONCE(s->seq);
	}
}

/* Claim slot `s` whose sequence was `seq` (even): 1 when this CPU now holds it. */
static __always_inline int ct_claim(struct netc_ct_slot *s, __u32 seq)
{
	return __sync_val_compare_and_swap(&s->seq, seq, seq + 1) == seq;
}

static __always_inline void ct_release(struct netc_ct_slot *s)
{
	__sync_fetch_and_add(&s->seq, 1);
}

/*
 * Remember `k` -> `v` in `map`: in an empty slot of its set, else in the one used least recently
 * (`now`: coarse seconds). NETC_CT_EXISTS with *found when the key has a slot already (nothing
 * written).
 */
static __always_inline int ct_insert(void *map, const struct netc_ct_key *k, __u32 first,
				     const struct netc_ct_value *v, __u16 now,
				     struct netc_ct_slot **found)
{
	struct netc_ct_slot *victim = NULL;
	__u32 victim_seq = 0;
	__u32 best = 0;
#pragma unroll
	for (__u32 way = 0; way < NETC_CT_WAYS; way++) {
		__u32 index = first + way;
		struct netc_ct_slot *s = bpf_map_lookup_elem(map, &index);
		if (!s)
			return NETC_CT_SKIPPED;
		__u32 seq = NETC_READ_ONCE(s->seq);
		NETC_BARRIER();
		__u32 age;
		if (s->key.family == 0) {
			age = 0x20000; /* empty: better than any used slot */
		} else {
			if (!(seq & 1) && ct_key_eq(&s->key, k)) {
				*found = s;
				return NETC_CT_EXISTS;
			}
			age = (__u16)(now - s->value.stamp) + 1;
		}
		if (age > best) {
			best = age;
			victim = s;
			victim_seq = seq;
		}
	}
	if (!victim || (victim_seq & 1) || !ct_claim(victim, victim_seq))
		return NETC_CT_SKIPPED;
	__builtin_memcpy(&victim->key, k, sizeof(*k));
	__builtin_memcpy(&victim->value, v, sizeof(*v));
	victim->value.stamp = now;
	ct_release(victim);
	return best == 0x20000 ? NETC_CT_INSERTED : NETC_CT_EVICTED;
}

/* Change the value of the slot `s` (found holding `k`): under a claim, and only if it still holds
 * `k`. False when another CPU held it or it holds another flow now. */
static __always_inline int ct_update(struct netc_ct_slot *s, const struct netc_ct_key *k,
				     const struct netc_ct_value *v, __u16 now)
{
	__u32 seq = NETC_READ_ONCE(s->seq);
	if ((seq & 1) || !ct_claim(s, seq))
		return 0;
	int same = ct_key_eq(&s->key, k);
	if (same) {
		__builtin_memcpy(&s->value, v, sizeof(*v));
		s->value.stamp = now;
	}
	ct_release(s);
	return same;
}

/* Forget `k` if slot `s` still holds it. */
static __always_inline void ct_forget(struct netc_ct_slot *s, const struct netc_ct_key *k)
{
	__u32 seq = NETC_READ_ONCE(s->seq);
	if ((seq & 1) || !ct_claim(s, seq))
		return;
	if (ct_key_eq(&s->key, k))
		__builtin_memset(&s->key, 0, sizeof(s->key));
	ct_release(s);
}

/* The coarse time of a flow's last use: seconds (2^30 ns), modulo 2^16. */
static __always_inline __u16 ct_now(void)
{
	return (__u16)(bpf_ktime_get_coarse_ns() >> 30);
}

#endif
