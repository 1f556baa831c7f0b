/* DPDK's runtime directory (/var/run/dpdk/PREFIX as root): the config file, memory maps
 * and the multi-process socket that secondary processes attach through. EAL makes it at
 * init and leaves it behind at exit, so every file prefix ever used stays there; a test
 * suite that runs instances under per-run prefixes left thousands. */
#ifndef DP_RUNTIME_DIR_H
#define DP_RUNTIME_DIR_H

/* Removes the directory path and everything in it; 0, or -1 with errno. EINVAL unless
 * path is BASE/dpdk/PREFIX with a PREFIX other than "", "." and "..". */
int dp_runtime_dir_remove(const char *path);

#endif
