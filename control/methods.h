/* The control socket's methods (../shared/API.md), over struct cp_state. */
#ifndef CP_METHODS_H
#define CP_METHODS_H

#include "rpc.h"

/* Terminated by {NULL}; ctx is the struct cp_state. */
extern const struct cp_rpc_method cp_methods[];

#endif
