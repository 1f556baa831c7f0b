#include "runtime_dir.h"

#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* EAL's runtime directories are BASE/dpdk/PREFIX. Anything else is refused: the prefix
 * comes from the operator's EAL arguments, and an empty one or ".." would otherwise make
 * this remove every instance's directory, or the directory above. */
static bool is_runtime_dir(const char *path)
{
	const char *last = strrchr(path, '/'), *parent;

	if (!last || last == path || !last[1] || strcmp(last + 1, ".") == 0 || strcmp(last + 1, "..") == 0)
		return false;
	for (parent = last - 1; parent > path && *parent != '/'; parent--)
		;
	return *parent == '/' && last - parent - 1 == 4 && strncmp(parent + 1, "dpdk", 4) == 0;
}

int dp_runtime_dir_remove(const char *path)
{
	if (!path || !is_runtime_dir(path)) {
		errno = EINVAL;
		return -1;
	}
	/* Depth first, so each directory is empty when its turn comes; symlinks not followed. */
	return nftw(path, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}
