#include "drop_reasons.h"

const char *const eg_drop_names[EG_DROP_MAX] = {
#define EG_DROP_NAME(id, name) [EG_DROP_##id] = name,
	EG_DROP_REASONS(EG_DROP_NAME)
#undef EG_DROP_NAME
};
