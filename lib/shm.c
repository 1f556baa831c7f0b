#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "table.h"

uint64_t eg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void eg_shm_name(const char *instance, char name[static EG_SHM_NAME_LEN])
{
	snprintf(name, EG_SHM_NAME_LEN, "/egress-%s", instance);
}

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static size_t worker_stride(unsigned n_sa, unsigned n_wg)
{
	return align_up(sizeof(struct eg_worker_shm) +
			sizeof(struct eg_egress_counters) * EG_MAX_EGRESSES +
			sizeof(uint64_t) * EG_MAX_POLICIES +
			sizeof(struct eg_sa_counters) * n_sa +
			sizeof(struct eg_wg_counters) * n_wg, 4096);
}

void eg_shm_loops_snapshot(const struct eg_shm_hdr *h, uint64_t *snap)
{
	/* The caller's stores (a keypair made FREE) come before the loads of the counts. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (unsigned w = 0; w < h->n_workers; w++) {
		const struct eg_worker_shm *ws = eg_shm_worker(h, w);

		snap[w] = __atomic_load_n(&ws->busy_loops, __ATOMIC_ACQUIRE) +
			  __atomic_load_n(&ws->idle_loops, __ATOMIC_ACQUIRE);
	}
}

void eg_shm_port_sum(const struct eg_shm_hdr *h, unsigned port, struct eg_port_counters *out)
{
	*out = (struct eg_port_counters){0};
	for (unsigned w = 0; w < h->n_workers; w++) {
		const struct eg_port_counters *c = &eg_shm_worker(h, w)->port[port];

		out->rx_packets += c->rx_packets;
		out->rx_bytes += c->rx_bytes;
		out->tx_packets += c->tx_packets;
		out->tx_bytes += c->tx_bytes;
		out->drops += c->drops;
	}
}

void eg_shm_egress_sum(const struct eg_shm_hdr *h, unsigned id, uint64_t *pkts, uint64_t *bytes)
{
	*pkts = *bytes = 0;
	for (unsigned w = 0; w < h->n_workers; w++) {
		const struct eg_egress_counters *c = &eg_shm_egress_counters(eg_shm_worker(h, w))[id];

		*pkts += c->tx_packets;
		*bytes += c->tx_bytes;
	}
}

void eg_shm_drops_sum(const struct eg_shm_hdr *h, uint64_t out[EG_DROP_MAX])
{
	memset(out, 0, sizeof(uint64_t) * EG_DROP_MAX);
	for (unsigned w = 0; w < h->n_workers; w++)
		for (unsigned r = 0; r < EG_DROP_MAX; r++)
			out[r] += eg_shm_worker(h, w)->drop[r];
}

bool eg_shm_loops_passed(const struct eg_shm_hdr *h, const uint64_t *snap)
{
	for (unsigned w = 0; w < h->n_workers; w++) {
		const struct eg_worker_shm *ws = eg_shm_worker(h, w);
		uint64_t now = __atomic_load_n(&ws->busy_loops, __ATOMIC_ACQUIRE) +
			       __atomic_load_n(&ws->idle_loops, __ATOMIC_ACQUIRE);

		/* A worker bumps its count at the end of an iteration: one more than the
		 * snapshot ends the iteration that may have been running then. */
		if (now == snap[w] && __atomic_load_n(&ws->quiescent, __ATOMIC_ACQUIRE) != UINT64_MAX)
			return false;
	}
	return true;
}

int eg_shm_create(const char *name, const char *instance, const struct eg_shm_geometry *g,
		  struct eg_shm_map *out)
{
	unsigned n_sa = g->n_sa_slots ? g->n_sa_slots : EG_MAX_SAS;
	size_t stride = worker_stride(n_sa, g->n_wg_slots);
	size_t slot = align_up(g->slot_size, 4096);
	size_t workers_off = align_up(sizeof(struct eg_shm_hdr), 4096);
	size_t sa_off = workers_off + stride * g->n_workers;
	size_t wg_off = align_up(sa_off + eg_sa_slot_stride() * n_sa, 4096);
	size_t punt_off = align_up(wg_off + eg_wg_slot_stride() * g->n_wg_slots, 4096);
	size_t inject_off = align_up(punt_off + sizeof(struct eg_msg_ring), 4096);
	size_t capture_stride = align_up(sizeof(struct eg_capture_ring), 4096);
	size_t capture_off = align_up(inject_off + sizeof(struct eg_msg_ring), 4096);
	size_t nat_off = capture_off + capture_stride * g->n_workers;
	size_t nat_size = g->nat.sessions ? align_up(eg_nat_region_size(&g->nat), 4096) : 0;
	size_t slots_off = nat_off + nat_size;
	size_t total = slots_off + slot * EG_TABLE_SLOTS;
	struct eg_shm_hdr *h;
	struct stat st;
	uint64_t epoch;
	int fd, rc;

	if (g->n_workers == 0 || g->n_workers > EG_MAX_WORKERS || g->n_ports > EG_MAX_PORTS ||
	    g->n_wg_slots > EG_WG_MAX_SLOTS)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	/* A fresh segment every start, so an attached control process sees the new epoch (and
	 * inode) and re-publishes instead of trusting a table the new workers never saw. */
	shm_unlink(name);
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)total) < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	h = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	if (getrandom(&epoch, sizeof(epoch), 0) != sizeof(epoch))
		epoch = eg_now_ns() ^ ((uint64_t)getpid() << 32);

	h->layout_version = EG_SHM_LAYOUT_VERSION;
	h->hdr_size = sizeof(*h);
	h->epoch = epoch | 1;
	h->total_size = total;
	h->dp_pid = getpid();
	h->n_workers = g->n_workers;
	h->n_ports = g->n_ports;
	h->worker_stride = (uint32_t)stride;
	h->workers_off = workers_off;
	for (unsigned i = 0; i < EG_TABLE_SLOTS; i++)
		h->slot_off[i] = slots_off + slot * i;
	h->slot_size = slot;
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		h->created_unix_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	}
	snprintf(h->instance, sizeof(h->instance), "%s", instance);
	h->imb_arch = g->imb_arch;
	h->n_sa_slots = n_sa;
	h->sa_off = sa_off;
	h->sa_stride = eg_sa_slot_stride();
	h->n_wg_slots = g->n_wg_slots;
	h->wg_off = wg_off;
	h->wg_stride = eg_wg_slot_stride();
	h->punt_off = punt_off;
	h->inject_off = inject_off;
	h->capture_off = capture_off;
	h->capture_stride = capture_stride;
	h->nat_off = nat_off;
	h->nat_size = nat_size;
	if (nat_size) {
		uint64_t seed;

		if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
			seed = epoch ^ eg_now_ns() * 0x9e3779b97f4a7c15ull;
		eg_nat_region_init(eg_shm_nat(h), &g->nat, seed);
	}
	for (unsigned w = 0; w < g->n_workers; w++)
		eg_shm_offline(eg_shm_worker(h, w));
	__atomic_store_n(&h->heartbeat_ns, eg_now_ns(), __ATOMIC_RELEASE);
	/* The magic last: an attacher that sees it sees a complete header. */
	__atomic_store_n(&h->magic, EG_SHM_MAGIC, __ATOMIC_RELEASE);

	out->hdr = h;
	out->size = total;
	out->fd = fd;
	out->inode = st.st_ino;
	snprintf(out->name, sizeof(out->name), "%s", name);
	return 0;
fail:
	close(fd);
	shm_unlink(name);
	return rc;
}

static int attach(const char *name, bool writable, struct eg_shm_map *out)
{
	struct eg_shm_hdr *h;
	struct stat st;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	fd = shm_open(name, writable ? O_RDWR : O_RDONLY, 0);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	if ((size_t)st.st_size < sizeof(*h)) {
		rc = -EPROTO;
		goto fail;
	}
	h = mmap(NULL, (size_t)st.st_size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	/* Every offset and count a reader follows must stay inside the mapping. */
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != EG_SHM_MAGIC ||
	    h->layout_version != EG_SHM_LAYOUT_VERSION || h->hdr_size != sizeof(*h) ||
	    h->total_size != (uint64_t)st.st_size || h->n_workers == 0 ||
	    h->n_workers > EG_MAX_WORKERS || h->n_ports > EG_MAX_PORTS ||
	    h->worker_stride < sizeof(struct eg_worker_shm) ||
	    h->workers_off + (uint64_t)h->worker_stride * h->n_workers > h->total_size ||
	    h->n_sa_slots > EG_MAX_SAS ||
	    h->sa_stride != eg_sa_slot_stride() || h->n_wg_slots > EG_WG_MAX_SLOTS ||
	    h->wg_stride != eg_wg_slot_stride() || h->capture_stride < sizeof(struct eg_capture_ring) ||
	    h->capture_off + h->capture_stride * h->n_workers > h->total_size ||
	    h->nat_off + h->nat_size > h->total_size) {
		munmap(h, (size_t)st.st_size);
		rc = -EPROTO;
		goto fail;
	}
	out->hdr = h;
	out->size = (size_t)st.st_size;
	out->fd = fd;
	out->inode = st.st_ino;
	snprintf(out->name, sizeof(out->name), "%s", name);
	return 0;
fail:
	close(fd);
	return rc;
}

int eg_shm_attach(const char *name, struct eg_shm_map *out)
{
	return attach(name, true, out);
}

int eg_shm_attach_readonly(const char *name, struct eg_shm_map *out)
{
	return attach(name, false, out);
}

bool eg_shm_replaced(const struct eg_shm_map *m)
{
	struct stat st;
	int fd = shm_open(m->name, O_RDONLY, 0);
	bool replaced;

	if (fd < 0)
		return true;
	replaced = fstat(fd, &st) < 0 || st.st_ino != m->inode;
	close(fd);
	return replaced;
}

void eg_shm_detach(struct eg_shm_map *m)
{
	if (m->hdr)
		munmap(m->hdr, m->size);
	if (m->fd > 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
}

int eg_shm_wait_grace(const struct eg_shm_hdr *h, uint64_t gen, unsigned timeout_ms)
{
	uint64_t deadline = eg_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		unsigned behind = 0;

		for (unsigned w = 0; w < h->n_workers; w++) {
			const struct eg_worker_shm *ws = eg_shm_worker(h, w);

			if (__atomic_load_n(&ws->quiescent, __ATOMIC_ACQUIRE) < gen)
				behind++;
		}
		if (behind == 0)
			return 0;
		if (eg_now_ns() >= deadline)
			return -ETIMEDOUT;
		/* Workers announce once per loop, idle ones at least every idle sleep. */
		struct timespec ts = {0, 50000};

		nanosleep(&ts, NULL);
	}
}

int eg_shm_publish(struct eg_shm_hdr *h, const void *table, size_t len, unsigned timeout_ms,
		   uint64_t *gen)
{
	uint64_t cur = __atomic_load_n(&h->current, __ATOMIC_ACQUIRE);
	uint64_t g = cur >> EG_SHM_GEN_SHIFT;
	unsigned slot = cur ? (unsigned)(cur & 1) ^ 1 : 0;
	int rc;

	if (len > h->slot_size)
		return -ENOSPC;
	/* The free slot last held generation g - 1 (or older): no worker may still read it
	 * once all have announced g. */
	if (cur) {
		rc = eg_shm_wait_grace(h, g, timeout_ms);
		if (rc)
			return rc;
	}
	memcpy((uint8_t *)h + h->slot_off[slot], table, len);
	/* A table (rather than some other blob a test publishes) learns its generation, which
	 * workers' flow caches key on. */
	if (len >= sizeof(struct eg_table_hdr) && ((const struct eg_table_hdr *)table)->magic == EG_TABLE_MAGIC)
		((struct eg_table_hdr *)((uint8_t *)h + h->slot_off[slot]))->generation = g + 1;
	__atomic_store_n(&h->current, ((g + 1) << EG_SHM_GEN_SHIFT) | slot, __ATOMIC_RELEASE);
	*gen = g + 1;
	return 0;
}

void eg_shm_revert(struct eg_shm_hdr *h, uint64_t *gen)
{
	uint64_t cur = __atomic_load_n(&h->current, __ATOMIC_ACQUIRE);
	uint64_t g = (cur >> EG_SHM_GEN_SHIFT) + 1;

	__atomic_store_n(&h->current, (g << EG_SHM_GEN_SHIFT) | ((cur & 1) ^ 1), __ATOMIC_RELEASE);
	*gen = g;
}
