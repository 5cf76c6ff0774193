// SPDX-License-Identifier: Apache-2.0
/* Prints the size and field offsets of every struct in netc_abi.h as lines
 * `struct size N` and `struct.field offset`, for runtime/tests/abi_layout.rs. Built for the host
 * by build.rs. */
#include <stddef.h>
#include <stdio.h>
#include "netc_abi.h"

#define SIZE(s) printf(#s " size %zu\n", sizeof(struct s))
#define OFF(s, f) printf(#s "." #f " %zu\n", offsetof(struct s, f))

int main(void)
{
	SIZE(netc_config); OFF(netc_config, generation); OFF(netc_config, flags);
	OFF(netc_config, epoch); OFF(netc_config, ct_sets); OFF(netc_config, ct_seed);
	OFF(netc_config, service_mark); OFF(netc_config, pad);
	SIZE(netc_frontend_key); OFF(netc_frontend_key, generation); OFF(netc_frontend_key, family);
	OFF(netc_frontend_key, protocol); OFF(netc_frontend_key, port); OFF(netc_frontend_key, addr);
	SIZE(netc_frontend); OFF(netc_frontend, service); OFF(netc_frontend, pad);
	SIZE(netc_endpoint_key); OFF(netc_endpoint_key, generation); OFF(netc_endpoint_key, ifindex);
	SIZE(netc_endpoint); OFF(netc_endpoint, id); OFF(netc_endpoint, flags); OFF(netc_endpoint, door);
	OFF(netc_endpoint, set);
	SIZE(netc_ip_key); OFF(netc_ip_key, generation); OFF(netc_ip_key, family); OFF(netc_ip_key, addr);
	SIZE(netc_cidr_key); OFF(netc_cidr_key, prefixlen); OFF(netc_cidr_key, generation);
	OFF(netc_cidr_key, family); OFF(netc_cidr_key, addr);
	SIZE(netc_policy_key); OFF(netc_policy_key, generation); OFF(netc_policy_key, set);
	OFF(netc_policy_key, identity); OFF(netc_policy_key, direction); OFF(netc_policy_key, protocol);
	OFF(netc_policy_key, port);
	SIZE(netc_range_key); OFF(netc_range_key, prefixlen); OFF(netc_range_key, generation);
	OFF(netc_range_key, set); OFF(netc_range_key, identity); OFF(netc_range_key, direction);
	OFF(netc_range_key, protocol); OFF(netc_range_key, port);
	SIZE(netc_policy_value); OFF(netc_policy_value, rule); OFF(netc_policy_value, pad);
	SIZE(netc_ct_key); OFF(netc_ct_key, saddr); OFF(netc_ct_key, daddr); OFF(netc_ct_key, sport);
	OFF(netc_ct_key, dport); OFF(netc_ct_key, ifindex); OFF(netc_ct_key, family);
	OFF(netc_ct_key, protocol); OFF(netc_ct_key, hook); OFF(netc_ct_key, pad);
	SIZE(netc_ct_value); OFF(netc_ct_value, generation); OFF(netc_ct_value, epoch);
	OFF(netc_ct_value, rule);
	OFF(netc_ct_value, verdict); OFF(netc_ct_value, pad); OFF(netc_ct_value, stamp);
	SIZE(netc_ct_slot); OFF(netc_ct_slot, seq); OFF(netc_ct_slot, key); OFF(netc_ct_slot, value);
	SIZE(netc_event); OFF(netc_event, time_ns); OFF(netc_event, generation); OFF(netc_event, rule);
	OFF(netc_event, endpoint); OFF(netc_event, ifindex); OFF(netc_event, saddr);
	OFF(netc_event, daddr); OFF(netc_event, sport); OFF(netc_event, dport);
	OFF(netc_event, family); OFF(netc_event, protocol); OFF(netc_event, direction);
	OFF(netc_event, verdict); OFF(netc_event, reason); OFF(netc_event, flags);
	OFF(netc_event, frontend_port); OFF(netc_event, service); OFF(netc_event, frontend);
	/* The hash of a key whose byte i is i + 1, with seed 0x0123456789abcdef. */
	struct netc_ct_key key;
	for (size_t i = 0; i < sizeof(key); i++)
		((unsigned char *)&key)[i] = (unsigned char)(i + 1);
	printf("ct_hash %llu\n", (unsigned long long)ct_hash(&key, 0x0123456789abcdefull));
	return 0;
}
