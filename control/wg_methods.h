/* The WireGuard methods of the control socket (../shared/API.md): wg.show, wg.peer.add,
 * wg.peer.remove. */
#ifndef CP_WG_METHODS_H
#define CP_WG_METHODS_H

#include <jansson.h>

#include "rpc.h"

int cp_m_wg_show(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err);
int cp_m_wg_peer_add(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err);
int cp_m_wg_peer_remove(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err);

#endif
