/* A persistent thread pool: workers are created once per context and wait for
 * work by spinning briefly (matmuls of a forward pass come back to back) and then
 * sleeping on a condition variable (so an idle pool costs no CPU, and an
 * oversubscribed machine is not starved by spinners). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include "tb_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ volatile("yield")
#else
#define cpu_relax() ((void)0)
#endif

#define SPIN_ROUNDS 20000

/* fork() copies only the calling thread: a child's copy of a pool has no workers,
 * so tb_pool_run would wait for them forever and tb_pool_free would join threads
 * that do not exist. Each pool remembers the fork generation it was made in. */
static unsigned fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void) { __atomic_add_fetch(&fork_generation, 1, __ATOMIC_SEQ_CST); }
static void register_atfork(void) { pthread_atfork(NULL, NULL, on_fork_child); }
static unsigned current_generation(void) { return __atomic_load_n(&fork_generation, __ATOMIC_SEQ_CST); }

struct tb_pool {
    int n;
    unsigned fork_gen;       /* fork generation of the creating process */
    pid_t owner;
    pthread_t *threads;
    tb_task_fn fn;
    void *arg;
    atomic_uint generation;  /* bumped once per task */
    atomic_int pending;      /* workers that have not finished the current task */
    atomic_int sleeping;
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t wake;
};

typedef struct { tb_pool *pool; int ith; } worker_arg;

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    tb_pool *pool = wa.pool;
    unsigned seen = 0;
    for (;;) {
        unsigned gen;
        int spins = 0;
        while ((gen = atomic_load(&pool->generation)) == seen) {
            if (++spins < SPIN_ROUNDS) { cpu_relax(); continue; }
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->sleeping, 1);
            /* re-check under the lock: tb_pool_run bumps generation before it locks */
            while (atomic_load(&pool->generation) == seen)
                pthread_cond_wait(&pool->wake, &pool->mu);
            atomic_fetch_sub(&pool->sleeping, 1);
            pthread_mutex_unlock(&pool->mu);
            spins = 0;
        }
        seen = gen;
        if (atomic_load(&pool->stop)) return NULL;
        pool->fn(pool->arg, wa.ith, pool->n);
        atomic_fetch_sub(&pool->pending, 1);
    }
}

tb_pool *tb_pool_new(int threads) {
    tb_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_once(&atfork_once, register_atfork);
    p->n = threads;
    p->fork_gen = current_generation();
    p->owner = getpid();
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (threads > 1) {
        p->threads = calloc((size_t)threads - 1, sizeof(pthread_t));
        if (!p->threads) { free(p); return NULL; }
        for (int i = 1; i < threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (wa) { wa->pool = p; wa->ith = i; }
            if (!wa || pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
                free(wa);
                p->n = i; /* shut down the ones that started */
                tb_pool_free(p);
                return NULL;
            }
        }
    }
    return p;
}

static void wake_sleepers(tb_pool *p) {
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

void tb_pool_run(tb_pool *p, tb_task_fn fn, void *arg) {
    if (p->n == 1) { fn(arg, 0, 1); return; }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->generation, 1);
    wake_sleepers(p);
    fn(arg, 0, p->n);
    int spins = 0;
    while (atomic_load(&p->pending) > 0) {
        /* with more threads than CPUs a worker may need our core to finish */
        if (++spins < SPIN_ROUNDS) cpu_relax(); else { sched_yield(); spins = 0; }
    }
}

int tb_pool_usable(const tb_pool *p) {
    if (p->n == 1 || p->fork_gen == current_generation()) return 0;
    return tb_fail("this context's %d threads belong to process %d, not to this forked child; "
                   "create a new context after fork", p->n, (int)p->owner);
}

void tb_pool_free(tb_pool *p) {
    if (!p) return;
    if (p->n > 1 && p->fork_gen != current_generation()) { /* a forked child's copy: no threads to stop */
        free(p->threads);
        free(p);
        return;
    }
    if (p->n > 1) {
        atomic_store(&p->stop, 1);
        atomic_fetch_add(&p->generation, 1);
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i < p->n; i++) pthread_join(p->threads[i - 1], NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
}
