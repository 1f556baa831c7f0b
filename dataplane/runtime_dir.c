#include "runtime_dir.h"

#include <ftw.h>
#include <stdio.h>

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

int dp_runtime_dir_remove(const char *path)
{
	/* Depth first, so each directory is empty when its turn comes; symlinks not followed. */
	return nftw(path, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}
