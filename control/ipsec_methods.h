/* ipsec.sa.add / ipsec.sa.remove / ipsec.sa.list on the control socket. */
#ifndef CP_IPSEC_METHODS_H
#define CP_IPSEC_METHODS_H

#include "rpc.h"

int cp_m_ipsec_sa_add(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err);
int cp_m_ipsec_sa_remove(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err);
int cp_m_ipsec_sa_list(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err);

#endif
