/* dp_runtime_dir_remove removes an EAL runtime directory and everything in it, and nothing
 * that is not one: the prefix comes from operators' EAL arguments. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime_dir.h"

static char base[64];

static void make_file(const char *path)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	fputs("x", f);
	fclose(f);
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static void setup(void)
{
	char path[160];

	snprintf(base, sizeof(base), "/tmp/egress-rtdir-XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	snprintf(path, sizeof(path), "%s/dpdk", base);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/dpdk/mine", base);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/dpdk/mine/config", base);
	make_file(path);
	snprintf(path, sizeof(path), "%s/dpdk/mine/fbarray_memzone", base);
	make_file(path);
	snprintf(path, sizeof(path), "%s/dpdk/other", base);
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/dpdk/other/config", base);
	make_file(path);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(runtime_dir, .init = setup, .fini = teardown);

Test(runtime_dir, removes_its_own_directory_only)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/dpdk/mine", base);
	cr_assert_eq(dp_runtime_dir_remove(path), 0);
	cr_assert(!exists(path));
	snprintf(path, sizeof(path), "%s/dpdk/other/config", base);
	cr_assert(exists(path), "another prefix's directory went too");
}

Test(runtime_dir, refuses_what_is_not_a_runtime_directory)
{
	static const char *const bad[] = {"/dpdk/", "/dpdk/.", "/dpdk/..", "/dpdk", "", "/other/mine", "/xdpdk/mine"};
	char path[160], config[160];

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", base, bad[i]);
		errno = 0;
		cr_assert_eq(dp_runtime_dir_remove(path), -1, "%s", path);
		cr_assert_eq(errno, EINVAL, "%s", path);
	}
	cr_assert_eq(dp_runtime_dir_remove(""), -1);
	cr_assert_eq(dp_runtime_dir_remove("dpdk/mine"), -1);
	snprintf(config, sizeof(config), "%s/dpdk/mine/config", base);
	cr_assert(exists(config));
	snprintf(config, sizeof(config), "%s/dpdk/other/config", base);
	cr_assert(exists(config));
}
