/* The generation publish/read protocol of lib/shm.c. The torture test runs a writer
 * process publishing as fast as grace periods allow while reader threads in another
 * process check that every table they acquire is one whole generation. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm.h"

enum { READERS = 2, STAMP_WORDS = 8192, TORTURE_MS = 1500 };

static char name[EG_SHM_NAME_LEN];

static void setup(void)
{
	snprintf(name, sizeof(name), "/egress-test-%d", getpid());
}

static void teardown(void)
{
	shm_unlink(name);
}

TestSuite(shm, .init = setup, .fini = teardown);

static struct eg_shm_map create(unsigned workers)
{
	struct eg_shm_geometry g = {.n_workers = workers, .n_ports = 2, .slot_size = 1 << 20};
	struct eg_shm_map m;

	cr_assert_eq(eg_shm_create(name, "test", &g, &m), 0);
	return m;
}

Test(shm, create_attach_and_layout)
{
	struct eg_shm_map m = create(3), a;
	struct stat st;
	int fd;

	cr_assert_eq(eg_shm_attach(name, &a), 0);
	cr_assert_eq(a.hdr->epoch, m.hdr->epoch);
	cr_assert_eq(a.hdr->n_workers, 3);
	cr_assert_eq(eg_shm_generation(a.hdr), 0);
	cr_assert_null(({ uint64_t g; eg_shm_table_acquire(a.hdr, &g); }));
	/* Secrets will live here: nobody else may read it. */
	fd = shm_open(name, O_RDONLY, 0);
	cr_assert_geq(fd, 0);
	fstat(fd, &st);
	close(fd);
	cr_assert_eq(st.st_mode & 0777, 0600);
	/* Workers' blocks do not overlap and are cache-line aligned. */
	for (unsigned w = 0; w < 3; w++) {
		uintptr_t p = (uintptr_t)eg_shm_worker(a.hdr, w);

		cr_assert_eq(p % EG_CACHE_LINE, 0);
		cr_assert_geq((uintptr_t)eg_shm_policy_hits(eg_shm_worker(a.hdr, w)) + EG_MAX_POLICIES * 8,
			      p);
	}
	cr_assert_not(eg_shm_replaced(&a));
	eg_shm_detach(&m);
	/* A new dataplane start re-creates the segment: the attached side must notice. */
	m = create(3);
	cr_assert(eg_shm_replaced(&a));
	cr_assert_neq(m.hdr->epoch, a.hdr->epoch);
	eg_shm_detach(&a);
	eg_shm_detach(&m);
}

Test(shm, attach_refuses_foreign_segments)
{
	struct eg_shm_map a;
	int fd = shm_open(name, O_RDWR | O_CREAT, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 1 << 16), 0);
	close(fd);
	cr_assert_eq(eg_shm_attach(name, &a), -EPROTO);
	shm_unlink(name);
	cr_assert_eq(eg_shm_attach(name, &a), -ENOENT);
}

Test(shm, readonly_attach_sees_counters_and_cannot_write)
{
	struct eg_shm_map m = create(2), a;
	int fd;

	cr_assert_eq(eg_shm_attach_readonly(name, &a), 0);
	cr_assert_eq(a.hdr->epoch, m.hdr->epoch);
	eg_shm_worker(m.hdr, 1)->port[1].tx_packets = 42;
	cr_assert_eq(eg_shm_worker(a.hdr, 1)->port[1].tx_packets, 42);
	/* The kernel writing into the read-only map fails with EFAULT: no signal, so the
	 * same check holds under AddressSanitizer, whose SIGSEGV handler a faulting child
	 * would meet instead of dying of the signal. */
	fd = open("/dev/zero", O_RDONLY);
	cr_assert_geq(fd, 0);
	errno = 0;
	cr_assert_eq(read(fd, &eg_shm_worker(a.hdr, 1)->port[1].tx_packets, 8), -1, "a write into a read-only map fails");
	cr_assert_eq(errno, EFAULT);
	close(fd);
	cr_assert_eq(eg_shm_worker(m.hdr, 1)->port[1].tx_packets, 42);
	eg_shm_detach(&a);
	eg_shm_detach(&m);
	cr_assert_eq(shm_unlink(name), 0);
	cr_assert_eq(eg_shm_attach_readonly(name, &a), -ENOENT);
}

/* Counts and offsets a reader follows: a header that would send it outside the mapping is
 * not ours to read. */
Test(shm, attach_refuses_out_of_range_geometry)
{
	struct eg_shm_map m = create(2), a;
	struct eg_shm_hdr good = *m.hdr;

	m.hdr->n_ports = EG_MAX_PORTS + 1;
	cr_assert_eq(eg_shm_attach_readonly(name, &a), -EPROTO);
	m.hdr->n_ports = good.n_ports;
	m.hdr->workers_off = good.total_size - good.worker_stride;
	cr_assert_eq(eg_shm_attach(name, &a), -EPROTO);
	m.hdr->workers_off = good.workers_off;
	m.hdr->worker_stride = 64;
	cr_assert_eq(eg_shm_attach(name, &a), -EPROTO);
	m.hdr->worker_stride = good.worker_stride;
	cr_assert_eq(eg_shm_attach_readonly(name, &a), 0);
	eg_shm_detach(&a);
	eg_shm_detach(&m);
}

Test(shm, publish_waits_for_grace_and_times_out_without_change)
{
	struct eg_shm_map m = create(2);
	struct eg_shm_hdr *h = m.hdr;
	uint8_t table[256] = {1};
	uint64_t gen;

	/* Offline workers never hold a grace period up. */
	cr_assert_eq(eg_shm_publish(h, table, sizeof(table), 100, &gen), 0);
	cr_assert_eq(gen, 1);
	/* Worker 0 comes online and reads generation 1, then stalls. */
	eg_shm_quiescent(h, eg_shm_worker(h, 0));
	cr_assert_eq(eg_shm_publish(h, table, sizeof(table), 100, &gen), 0);	/* slot 1 was free */
	cr_assert_eq(gen, 2);
	/* Writing slot 0 again needs worker 0 past generation 2: it is stalled at 1. */
	cr_assert_eq(eg_shm_publish(h, table, sizeof(table), 50, &gen), -ETIMEDOUT);
	cr_assert_eq(eg_shm_generation(h), 2, "a timed-out publish changed nothing");
	cr_assert_eq(eg_shm_wait_grace(h, 2, 20), -ETIMEDOUT);
	eg_shm_quiescent(h, eg_shm_worker(h, 0));
	cr_assert_eq(eg_shm_wait_grace(h, 2, 20), 0);
	cr_assert_eq(eg_shm_publish(h, table, sizeof(table), 50, &gen), 0);
	cr_assert_eq(gen, 3);
	/* Too large for a slot. */
	static uint8_t big[(1 << 20) + 4096];

	cr_assert_eq(eg_shm_publish(h, big, sizeof(big), 50, &gen), -ENOSPC);
	eg_shm_detach(&m);
}

Test(shm, revert_restores_the_previous_slot)
{
	struct eg_shm_map m = create(1);
	struct eg_shm_hdr *h = m.hdr;
	uint64_t a = 0xaaaa, b = 0xbbbb, gen;
	const uint64_t *t;

	cr_assert_eq(eg_shm_publish(h, &a, sizeof(a), 100, &gen), 0);
	eg_shm_quiescent(h, eg_shm_worker(h, 0));
	cr_assert_eq(eg_shm_publish(h, &b, sizeof(b), 100, &gen), 0);
	t = eg_shm_table_acquire(h, &gen);
	cr_assert_eq(*t, 0xbbbb);
	eg_shm_revert(h, &gen);
	cr_assert_eq(gen, 3, "generations only grow");
	t = eg_shm_table_acquire(h, &gen);
	cr_assert_eq(*t, 0xaaaa);
	eg_shm_detach(&m);
}

/* Every 8-byte word of generation g's table holds g's stamp. */
static uint64_t stamp(uint64_t g)
{
	return g * 0x9e3779b97f4a7c15ull;
}

struct reader {
	struct eg_shm_hdr *h;
	unsigned id;
	uint64_t reads, torn, backwards, last_gen;
};

static volatile int readers_stop;

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct eg_worker_shm *w = eg_shm_worker(r->h, r->id);

	eg_shm_quiescent(r->h, w);
	while (!readers_stop) {
		uint64_t gen;
		const uint64_t *t = eg_shm_table_acquire(r->h, &gen);

		if (t) {
			uint64_t want = stamp(gen);

			/* Read the whole table, slowly enough for a writer to race us. */
			for (unsigned i = 0; i < STAMP_WORDS; i++)
				if (__atomic_load_n(&t[i], __ATOMIC_RELAXED) != want) {
					r->torn++;
					break;
				}
			if (gen < r->last_gen)
				r->backwards++;
			r->last_gen = gen;
			r->reads++;
		}
		eg_shm_quiescent(r->h, w);
	}
	eg_shm_offline(w);
	return NULL;
}

Test(shm, torture_writer_process_vs_reader_threads, .timeout = 60)
{
	struct eg_shm_map m = create(READERS);
	static uint64_t table[STAMP_WORDS];
	int pipefd[2];
	pid_t child;
	uint64_t published = 0, timeouts = 0;
	uint64_t end;

	cr_assert_eq(pipe(pipefd), 0);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		/* The reader process: its own mapping, at its own address. */
		struct eg_shm_map a;
		struct reader r[READERS] = {0};
		pthread_t th[READERS];
		uint64_t res[3] = {0};

		close(pipefd[0]);
		if (eg_shm_attach(name, &a) != 0)
			_exit(2);
		for (unsigned i = 0; i < READERS; i++) {
			r[i].h = a.hdr;
			r[i].id = i;
			pthread_create(&th[i], NULL, reader_main, &r[i]);
		}
		usleep(TORTURE_MS * 1000);
		readers_stop = 1;
		for (unsigned i = 0; i < READERS; i++) {
			pthread_join(th[i], NULL);
			res[0] += r[i].reads;
			res[1] += r[i].torn;
			res[2] += r[i].backwards;
		}
		if (write(pipefd[1], res, sizeof(res)) != sizeof(res))
			_exit(3);
		_exit(0);
	}
	close(pipefd[1]);
	end = eg_now_ns() + (uint64_t)TORTURE_MS * 1000000ull;
	while (eg_now_ns() < end) {
		uint64_t next = eg_shm_generation(m.hdr) + 1, gen;

		for (unsigned i = 0; i < STAMP_WORDS; i++)
			table[i] = stamp(next);
		int rc = eg_shm_publish(m.hdr, table, sizeof(table), 200, &gen);

		if (rc == -ETIMEDOUT) {
			timeouts++;
			continue;
		}
		cr_assert_eq(rc, 0);
		cr_assert_eq(gen, next);
		published++;
	}

	uint64_t res[3];
	int status;

	cr_assert_eq(read(pipefd[0], res, sizeof(res)), (ssize_t)sizeof(res));
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_log_info("published %llu generations (%llu grace timeouts), readers checked %llu tables",
		    (unsigned long long)published, (unsigned long long)timeouts, (unsigned long long)res[0]);
	cr_assert_gt(published, 10, "the writer made progress");
	cr_assert_gt(res[0], 10, "the readers made progress");
	cr_assert_eq(res[1], 0, "%llu torn or mixed tables seen", (unsigned long long)res[1]);
	cr_assert_eq(res[2], 0, "a reader saw generations go backwards");
	eg_shm_detach(&m);
}

/* The rings between control and the service lcore: order kept, a full ring refuses and
 * counts, a wrapped ring still reads in order, and a damaged length is skipped. */
Test(shm, message_rings_keep_order_and_count_what_they_refuse)
{
	struct eg_shm_map m = create(1);
	struct eg_msg_ring *r = eg_shm_punt(m.hdr);
	struct eg_msg in, out;

	cr_assert_neq((void *)r, (void *)eg_shm_inject(m.hdr), "two rings");
	memset(&in, 0, sizeof(in));
	in.kind = EG_MSG_WG_HANDSHAKE;
	for (unsigned round = 0; round < 3; round++) {
		for (unsigned i = 0; i < EG_MSG_RING_SLOTS + 5; i++) {
			in.peer_slot = round * 100000 + i;
			in.len = (uint16_t)(i % EG_MSG_DATA_MAX);
			memset(in.data, (int)i, in.len);
			cr_assert_eq(eg_msg_put(r, &in), i < EG_MSG_RING_SLOTS, "message %u of round %u", i, round);
		}
		cr_assert_eq(r->dropped, 5 * (round + 1));
		for (unsigned i = 0; i < EG_MSG_RING_SLOTS; i++) {
			cr_assert(eg_msg_get(r, &out));
			cr_assert_eq(out.peer_slot, round * 100000 + i, "in order across the wrap");
			cr_assert_eq(out.len, i % EG_MSG_DATA_MAX);
			for (unsigned k = 0; k < out.len; k++)
				cr_assert_eq(out.data[k], (uint8_t)i);
		}
		cr_assert_not(eg_msg_get(r, &out), "empty again");
	}
	in.len = EG_MSG_DATA_MAX + 1;
	cr_assert_not(eg_msg_put(r, &in), "an oversized message is refused");
	in.len = 1;
	cr_assert(eg_msg_put(r, &in));
	r->slots[(r->head - 1) & (EG_MSG_RING_SLOTS - 1)].len = 9999;
	cr_assert_not(eg_msg_get(r, &out), "a slot with a damaged length is skipped, not read");
	eg_shm_detach(&m);
}

/* Keypairs are wiped only once every worker finished the loop it was in. */
Test(shm, loop_grace_waits_for_every_online_worker)
{
	struct eg_shm_map m = create(3);
	uint64_t snap[3];

	for (unsigned w = 0; w < 3; w++)
		eg_shm_quiescent(m.hdr, eg_shm_worker(m.hdr, w));	/* online */
	eg_shm_loops_snapshot(m.hdr, snap);
	cr_assert_not(eg_shm_loops_passed(m.hdr, snap));
	eg_shm_worker(m.hdr, 0)->busy_loops++;
	eg_shm_worker(m.hdr, 1)->idle_loops++;
	cr_assert_not(eg_shm_loops_passed(m.hdr, snap), "worker 2 has not moved");
	eg_shm_offline(eg_shm_worker(m.hdr, 2));
	cr_assert(eg_shm_loops_passed(m.hdr, snap), "an offline worker holds nothing");
	eg_shm_detach(&m);
}

Test(shm, wireguard_slots_are_laid_out_inside_the_segment)
{
	struct eg_shm_geometry g = {.n_workers = 2, .n_ports = 2, .slot_size = 1 << 20, .n_wg_slots = EG_WG_MAX_SLOTS};
	struct eg_shm_map m;
	struct eg_wg_peer_slot *last;

	cr_assert_eq(eg_shm_create(name, "test", &g, &m), 0);
	last = eg_shm_wg(m.hdr, EG_WG_MAX_SLOTS - 1);
	cr_assert_leq((uint8_t *)eg_wg_kp(last, EG_WG_KEYPAIRS - 1) + eg_wg_kp_stride(),
		      (uint8_t *)eg_shm_punt(m.hdr), "the last keypair ends before the rings");
	cr_assert_leq((uint8_t *)(eg_shm_inject(m.hdr) + 1), (uint8_t *)m.hdr + m.hdr->slot_off[0]);
	cr_assert_eq(eg_wg_index_slot(eg_wg_index(EG_WG_MAX_SLOTS - 1, 3, 0xbeef)), EG_WG_MAX_SLOTS - 1);
	cr_assert_eq(eg_wg_index_kp(eg_wg_index(EG_WG_MAX_SLOTS - 1, 3, 0xbeef)), 3);
	/* Counters of the last peer slot end inside the worker's block. */
	cr_assert_leq((uint8_t *)&eg_shm_wg_counters(m.hdr, eg_shm_worker(m.hdr, 0))[EG_WG_MAX_SLOTS],
		      (uint8_t *)eg_shm_worker(m.hdr, 1));
	eg_shm_detach(&m);
}
