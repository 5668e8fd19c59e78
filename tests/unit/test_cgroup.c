/* The v1 cpu controller's quota under an ancestor that has one (kiln in a container with a CPU
 * limit): a sandbox's group may not ask for more than the ancestors allow — the kernel refuses
 * the write with EINVAL — so sbx_cg_create() asks for the tightest ancestor's instead. Real
 * cgroups (root, a v1 cpu hierarchy at /sys/fs/cgroup/cpu); skipped elsewhere. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/sbx_int.h"

#define CPU_ROOT "/sys/fs/cgroup/cpu"

struct tree {
    char a[64], b[96], parent[128];
};

static void put(const char *dir, const char *file, const char *val)
{
    char path[256];
    int fd;

    snprintf(path, sizeof path, "%s/%s", dir, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    if (write(fd, val, strlen(val)) != (ssize_t)strlen(val))
        fail_msg("write %s to %s: %s", val, path, strerror(errno));
    close(fd);
}

static long long get(const char *dir, const char *file)
{
    char path[256], buf[64] = {0};
    int fd;
    ssize_t n;

    snprintf(path, sizeof path, "%s/%s", dir, file);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    assert_true(n > 0);
    return strtoll(buf, NULL, 10);
}

/* <root>/kiln-cgtest-<pid> with a quota, a group without one under it, and kiln's parent. */
static int setup(void **state)
{
    struct tree *t;

    if (geteuid() != 0 || access(CPU_ROOT "/cpu.cfs_quota_us", F_OK) != 0)
        return 0;
    t = calloc(1, sizeof *t);
    snprintf(t->a, sizeof t->a, CPU_ROOT "/kiln-cgtest-%d", (int)getpid());
    snprintf(t->b, sizeof t->b, "%s/inner", t->a);
    snprintf(t->parent, sizeof t->parent, "%s/kiln", t->b);
    if (mkdir(t->a, 0755) < 0 || mkdir(t->b, 0755) < 0 || mkdir(t->parent, 0755) < 0) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tree *t = *state;

    if (t == NULL)
        return 0;
    rmdir(t->parent);
    rmdir(t->b);
    rmdir(t->a);
    free(t);
    return 0;
}

static void test_ceiling_is_the_tightest_ancestor(void **state)
{
    struct tree *t = *state;
    char leaf[160];

    if (t == NULL)
        skip();
    snprintf(leaf, sizeof leaf, "%s/sbx-1-1", t->parent);
    assert_int_equal(sbx_cg_v1_quota_ceiling(leaf), -1); /* no ancestor has a quota yet */
    put(t->a, "cpu.cfs_period_us", "100000");
    put(t->a, "cpu.cfs_quota_us", "30000");
    assert_int_equal(sbx_cg_v1_quota_ceiling(leaf), 30000);
    /* per 100 ms whatever the ancestor's period: 40 ms per 50 ms is 80 ms per 100 ms */
    put(t->a, "cpu.cfs_quota_us", "-1");
    put(t->a, "cpu.cfs_period_us", "50000");
    put(t->a, "cpu.cfs_quota_us", "40000");
    assert_int_equal(sbx_cg_v1_quota_ceiling(leaf), 80000);
    put(t->b, "cpu.cfs_period_us", "100000");
    put(t->b, "cpu.cfs_quota_us", "20000");
    assert_int_equal(sbx_cg_v1_quota_ceiling(leaf), 20000);
    put(t->b, "cpu.cfs_quota_us", "-1");
    put(t->a, "cpu.cfs_quota_us", "-1");
}

static void test_create_under_a_capped_ancestor(void **state)
{
    struct tree *t = *state;
    struct sbx_cg_host host;
    struct sbx_limits lim;
    struct sbx_cg_run run;
    struct errbuf eb = {{0}};

    if (t == NULL)
        skip();
    put(t->a, "cpu.cfs_period_us", "100000");
    put(t->a, "cpu.cfs_quota_us", "30000");
    memset(&host, 0, sizeof host);
    host.v1_cpu = t->parent;
    memset(&lim, 0, sizeof lim);
    lim.memory_mb = 64;
    lim.pids = 16;
    lim.cpu_quota = 100000; /* a whole CPU asked for, 30% allowed above */
    if (sbx_cg_create(&host, 1, &lim, &run, &eb) != KILN_OK)
        fail_msg("sbx_cg_create under a 30%% ancestor: %s", eb.msg);
    assert_non_null(run.cpu);
    assert_int_equal(get(run.cpu, "cpu.cfs_quota_us"), 30000);
    sbx_cg_destroy(&run);
    /* below the ancestor's, the job's own quota stands */
    lim.cpu_quota = 10000;
    if (sbx_cg_create(&host, 2, &lim, &run, &eb) != KILN_OK)
        fail_msg("sbx_cg_create: %s", eb.msg);
    assert_int_equal(get(run.cpu, "cpu.cfs_quota_us"), 10000);
    sbx_cg_destroy(&run);
    put(t->a, "cpu.cfs_quota_us", "-1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_is_the_tightest_ancestor),
        cmocka_unit_test(test_create_under_a_capped_ancestor),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
