/* egress-bench --check's counter ledger (tools/bench/ledger.c) on a real shared-memory
 * layout: a worker that counted what its frames say passes; one counter off anywhere the
 * ledger covers (an egress, a policy, an SA, a WireGuard peer, source NAT), or a counter
 * no frame named that moved, fails and is named. The bench's own runs only ever show it
 * passing. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ledger.h"

enum { SA_SLOTS = 4, WG_SLOTS = 3 };

static char name[EG_SHM_NAME_LEN];
static struct eg_shm_map map;
static struct eg_egress_cfg egresses[2] = {{.name = "uplink"}, {.name = "tunnel"}};
static struct eg_policy_cfg policies[1] = {{.name = "web"}};
static struct eg_sa_cfg sas[2] = {{.spi = 256, .dir = EG_SA_DIR_OUT}, {.spi = 257, .dir = EG_SA_DIR_IN}};
static struct eg_wg_peer_cfg peers[1] = {{.name = "branch"}};
static struct eg_config cfg;

static void setup(void)
{
	struct eg_shm_geometry g = {.n_workers = 2, .n_ports = 2, .slot_size = 1 << 16, .n_sa_slots = SA_SLOTS,
				    .n_wg_slots = WG_SLOTS};

	snprintf(name, sizeof(name), "/egress-test-ledger-%d", getpid());
	cr_assert_eq(eg_shm_create(name, "test", &g, &map), 0);
	cfg = (struct eg_config){.n_egresses = 2, .egresses = egresses, .n_policies = 1, .policies = policies,
				 .n_sas = 2, .sas = sas};
	cfg.wg.n_peers = 1;
	cfg.wg.peers = peers;
	cr_redirect_stderr();
}

static void teardown(void)
{
	eg_shm_detach(&map);
	shm_unlink(name);
}

TestSuite(ledger, .init = setup, .fini = teardown);

/* What one sealed ESP frame and one WireGuard frame add, both to the ledger and to the
 * worker's counters, as the dataplane would; then f spoils one counter (or nothing). */
static uint64_t run(void (*spoil)(struct eg_worker_shm *w))
{
	struct eg_worker_shm *w = eg_shm_worker(map.hdr, 1);
	struct bench_ledger l;

	/* counters from before the run are not the run's */
	eg_shm_egress_counters(w)[1].tx_packets = 1000;
	eg_shm_sa_counters(w)[0].bytes = 77;
	cr_assert_eq(bench_ledger_open(&l, map.hdr, w), 0);

	bench_ledger_egress(&l, 1, 134);
	bench_ledger_policy(&l, 0);
	bench_ledger_sa(&l, 0, 84);
	bench_ledger_wg_tx(&l, 0, 128);
	bench_ledger_wg_rx(&l, 2, 96);
	bench_ledger_nat_out(&l);
	bench_ledger_egress(&l, -1, 500);	/* no home: adds nothing */

	eg_shm_egress_counters(w)[1].tx_packets++;
	eg_shm_egress_counters(w)[1].tx_bytes += 134;
	eg_shm_policy_hits(w)[0]++;
	eg_shm_sa_counters(w)[0].packets++;
	eg_shm_sa_counters(w)[0].bytes += 84;
	eg_shm_wg_counters(map.hdr, w)[0].tx_packets++;
	eg_shm_wg_counters(map.hdr, w)[0].tx_bytes += 128;
	eg_shm_wg_counters(map.hdr, w)[2].rx_packets++;
	eg_shm_wg_counters(map.hdr, w)[2].rx_bytes += 96;
	w->nat_out++;
	/* Counters the ledger leaves to others: drops and the per-port ones. */
	w->drops += 3;
	w->port[0].rx_packets += 5;
	if (spoil)
		spoil(w);
	return bench_ledger_close(&l, &cfg, "test");
}

Test(ledger, counters_as_the_frames_say_pass)
{
	cr_assert_eq(run(NULL), 0);
	fflush(stderr);
	cr_assert_stderr_eq_str("");
}

static void sa_bytes_one_more(struct eg_worker_shm *w)
{
	eg_shm_sa_counters(w)[0].bytes++;
}

Test(ledger, sa_bytes_off_by_one_is_named)
{
	cr_assert_eq(run(sa_bytes_one_more), 1);
	fflush(stderr);
	cr_assert_stderr_eq_str("egress-bench: test: SA 256 out bytes went up by 85, the frames say 84\n");
}

static void egress_counted_twice(struct eg_worker_shm *w)
{
	eg_shm_egress_counters(w)[1].tx_packets++;
}

Test(ledger, a_frame_counted_twice_is_named)
{
	cr_assert_eq(run(egress_counted_twice), 1);
	fflush(stderr);
	cr_assert_stderr_eq_str("egress-bench: test: egress tunnel tx_packets went up by 2, the frames say 1\n");
}

static void wrong_policy(struct eg_worker_shm *w)
{
	eg_shm_policy_hits(w)[0]--;
	eg_shm_policy_hits(w)[EG_MAX_POLICIES - 1]++;
}

Test(ledger, a_hit_on_the_wrong_policy_is_two_differences)
{
	cr_assert_eq(run(wrong_policy), 2);
}

static void wrong_peer(struct eg_worker_shm *w)
{
	eg_shm_wg_counters(map.hdr, w)[2].rx_packets--;
	eg_shm_wg_counters(map.hdr, w)[1].rx_packets++;
}

Test(ledger, a_frame_on_the_wrong_peer_is_found)
{
	cr_assert_eq(run(wrong_peer), 2);
}

static void last_wg_counter(struct eg_worker_shm *w)
{
	eg_shm_wg_counters(map.hdr, w)[WG_SLOTS - 1].tx_bytes += 9;
}

Test(ledger, the_last_word_of_the_block_is_compared)
{
	cr_assert_eq(run(last_wg_counter), 1);
}

static void nat_in_moved(struct eg_worker_shm *w)
{
	w->nat_in++;
	eg_shm_sa_counters(w)[SA_SLOTS - 1].replays++;
}

Test(ledger, counters_no_frame_named_must_not_move)
{
	cr_assert_eq(run(nat_in_moved), 2);
}
