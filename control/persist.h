/* The state file: what operators changed through the socket (egresses and policies), so
 * that a restarted egress-control comes back to the same state. Written atomically (temp
 * file, fsync, rename, fsync of the directory): a crash at any point leaves either the old
 * or the new file, never a torn one. */
#ifndef CP_PERSIST_H
#define CP_PERSIST_H

#include "config.h"
#include "ipsec.h"
#include "wg.h"

/* 0 and the arrays filled; 1 when there is no state file; -errno with err (path inside the
 * file) when it cannot be used. *n_wg_peers is -1 when the file has no WireGuard peers
 * (the config's stay). */
int cp_persist_load(const char *path, struct eg_egress_cfg **egresses, unsigned *n_egresses,
		    struct eg_policy_cfg **policies, unsigned *n_policies, struct eg_sa_cfg **sas,
		    unsigned *n_sas, struct eg_wg_peer_cfg **wg_peers, int *n_wg_peers, struct eg_error *err);

/* Writes the new state next to path (path + ".tmp"), fsynced, without replacing path yet.
 * SA keys and WireGuard preshared keys are in it: the file is 0600. */
int cp_persist_prepare(const char *path, const struct eg_egress_cfg *egresses, unsigned n_egresses,
		       const struct eg_policy_cfg *policies, unsigned n_policies,
		       const struct cp_sa *sas, unsigned n_sas, const struct cp_wg *wg);
/* Puts the prepared file in place. */
int cp_persist_commit(const char *path);
/* Removes a prepared file that will not be used. */
void cp_persist_abort(const char *path);

#endif
