#include "capture.h"

#include <time.h>

void dp_capture_reload(struct dp_worker *w, uint32_t session)
{
	const struct eg_capture_spec *s = &w->ctx->shm.hdr->capture;

	/* The session was loaded with acquire: the fields control wrote before it are
	 * visible. A newer session's fields may be mixed in; see lib/capture_ring.h. */
	w->cap = *s;
	w->cap.session = session;
	if (w->cap.snaplen == 0 || w->cap.snaplen > EG_CAPTURE_SNAP_MAX)
		w->cap.snaplen = EG_CAPTURE_SNAP_MAX;
}

void dp_capture_copy(struct dp_worker *w, const struct rte_mbuf *m, uint32_t off, uint8_t dir)
{
	struct eg_capture_ring *r = eg_shm_capture(w->ctx->shm.hdr, w->id);
	struct eg_capture_rec *rec;
	uint32_t len = rte_pktmbuf_pkt_len(m), cap;
	const void *data;
	struct timespec ts;

	if (off > len)
		return;
	rec = eg_capture_reserve(r);
	if (!rec)
		return;
	len -= off;
	cap = len < w->cap.snaplen ? len : w->cap.snaplen;
	data = rte_pktmbuf_read(m, off, cap, rec->data);
	if (data && data != rec->data)
		memcpy(rec->data, data, cap);
	clock_gettime(CLOCK_REALTIME, &ts);
	rec->session = w->cap.session;
	rec->cap_len = (uint16_t)(data ? cap : 0);
	rec->dir = dir;
	rec->len = len;
	rec->time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	eg_capture_commit(r);
}
