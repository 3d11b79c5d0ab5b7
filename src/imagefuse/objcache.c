/* Thread-safe object cache with a byte budget: see objcache.h. */
#include "imagefuse/objcache.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum oc_state { OC_LOADING, OC_READY, OC_GONE };

struct oc_slot {
    uint64_t k1, k2;
    struct oc_slot *hnext;      /* hash chain */
    struct oc_slot *prev, *next; /* LRU list (READY only) */
    void *obj;
    size_t cost;
    unsigned refs;
    enum oc_state state; /* GONE: out of the table (evicted, or its load failed) */
    int error;           /* the failed load's */
};

static uint64_t
mix (uint64_t a, uint64_t b)
{
    uint64_t z = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void
oc_init (struct objcache *c, size_t budget, oc_load_fn load, oc_free_fn free_fn, void *ctx)
{
    memset (c, 0, sizeof (*c));
    c->shard_budget = budget / OC_SHARDS;
    c->load = load;
    c->free = free_fn;
    c->ctx = ctx;
    for (size_t i = 0; i < OC_SHARDS; i++) {
        pthread_mutex_init (&c->shard[i].lock, NULL);
        pthread_cond_init (&c->shard[i].loaded, NULL);
    }
}

static void
slot_free (struct objcache *c, struct oc_slot *s)
{
    if (s->obj)
        c->free (s->obj);
    free (s);
}

void
oc_destroy (struct objcache *c)
{
    for (size_t i = 0; i < OC_SHARDS; i++) {
        struct oc_shard *sh = &c->shard[i];
        for (size_t b = 0; b < sh->nbuckets; b++) {
            struct oc_slot *s = sh->buckets[b];
            while (s) {
                struct oc_slot *n = s->hnext;
                slot_free (c, s);
                s = n;
            }
        }
        free (sh->buckets);
        pthread_mutex_destroy (&sh->lock);
        pthread_cond_destroy (&sh->loaded);
    }
    memset (c, 0, sizeof (*c));
}

static void
lru_unlink (struct oc_shard *sh, struct oc_slot *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        sh->lru_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        sh->lru_tail = s->prev;
    s->prev = s->next = NULL;
}

static void
lru_front (struct oc_shard *sh, struct oc_slot *s)
{
    s->prev = NULL;
    s->next = sh->lru_head;
    if (sh->lru_head)
        sh->lru_head->prev = s;
    sh->lru_head = s;
    if (sh->lru_tail == NULL)
        sh->lru_tail = s;
}

static void
hash_unlink (struct oc_shard *sh, struct oc_slot *s, uint64_t h)
{
    struct oc_slot **pp = &sh->buckets[h & (sh->nbuckets - 1)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = s->hnext;
    s->hnext = NULL;
    sh->count--;
}

/* Double the buckets when chains grow; a failed allocation keeps the old
 * table (longer chains, still correct). */
static void
grow (struct oc_shard *sh)
{
    size_t n = sh->nbuckets ? sh->nbuckets * 2 : 64;
    struct oc_slot **nb = calloc (n, sizeof (*nb));
    if (nb == NULL)
        return;
    for (size_t b = 0; b < sh->nbuckets; b++) {
        struct oc_slot *s = sh->buckets[b];
        while (s) {
            struct oc_slot *next = s->hnext;
            size_t i = mix (s->k1, s->k2) & (n - 1);
            s->hnext = nb[i];
            nb[i] = s;
            s = next;
        }
    }
    free (sh->buckets);
    sh->buckets = nb;
    sh->nbuckets = n;
}

/* Out of the table, oldest first, until the shard is within budget.  An
 * object still referenced is freed by its last oc_put(). */
static void
evict (struct objcache *c, struct oc_shard *sh)
{
    while (sh->bytes > c->shard_budget && sh->lru_tail) {
        struct oc_slot *s = sh->lru_tail;
        lru_unlink (sh, s);
        hash_unlink (sh, s, mix (s->k1, s->k2));
        sh->bytes -= s->cost;
        s->state = OC_GONE;
        if (s->refs == 0)
            slot_free (c, s);
    }
}

int
oc_get (struct objcache *c, uint64_t k1, uint64_t k2, struct oc_slot **out)
{
    uint64_t h = mix (k1, k2);
    size_t si = (size_t) (h >> 60) % OC_SHARDS;
    struct oc_shard *sh = &c->shard[si];
    struct oc_slot *s;

    pthread_mutex_lock (&sh->lock);
    if (sh->nbuckets == 0 || sh->count > sh->nbuckets * 2)
        grow (sh);
    if (sh->nbuckets == 0) {
        pthread_mutex_unlock (&sh->lock);
        return -ENOMEM;
    }
    for (s = sh->buckets[h & (sh->nbuckets - 1)]; s; s = s->hnext)
        if (s->k1 == k1 && s->k2 == k2)
            break;
    if (s) {
        s->refs++;
        if (s->state == OC_LOADING) {
            c->waits[si]++;
            while (s->state == OC_LOADING)
                pthread_cond_wait (&sh->loaded, &sh->lock);
        } else {
            c->hits[si]++;
        }
        if (s->state == OC_GONE && s->obj == NULL) {
            int e = s->error;
            if (--s->refs == 0)
                slot_free (c, s);
            pthread_mutex_unlock (&sh->lock);
            return e;
        }
        if (s->state == OC_READY && sh->lru_head != s) {
            lru_unlink (sh, s);
            lru_front (sh, s);
        }
        pthread_mutex_unlock (&sh->lock);
        *out = s;
        return 0;
    }

    s = calloc (1, sizeof (*s));
    if (s == NULL) {
        pthread_mutex_unlock (&sh->lock);
        return -ENOMEM;
    }
    s->k1 = k1;
    s->k2 = k2;
    s->refs = 1;
    s->state = OC_LOADING;
    size_t b = h & (sh->nbuckets - 1);
    s->hnext = sh->buckets[b];
    sh->buckets[b] = s;
    sh->count++;
    c->loads[si]++;
    pthread_mutex_unlock (&sh->lock);

    void *obj = NULL;
    size_t cost = 0;
    int r = c->load (c->ctx, k1, k2, s, &obj, &cost);

    pthread_mutex_lock (&sh->lock);
    if (r < 0) {
        hash_unlink (sh, s, h);
        s->state = OC_GONE;
        s->error = r;
        pthread_cond_broadcast (&sh->loaded);
        if (--s->refs == 0)
            slot_free (c, s);
        pthread_mutex_unlock (&sh->lock);
        return r;
    }
    s->obj = obj;
    s->cost = cost + sizeof (*s);
    s->state = OC_READY;
    lru_front (sh, s);
    sh->bytes += s->cost;
    pthread_cond_broadcast (&sh->loaded);
    evict (c, sh);
    pthread_mutex_unlock (&sh->lock);
    *out = s;
    return 0;
}

void *
oc_obj (const struct oc_slot *slot)
{
    return slot->obj;
}

void
oc_put (struct objcache *c, struct oc_slot *s)
{
    uint64_t h = mix (s->k1, s->k2);
    struct oc_shard *sh = &c->shard[(size_t) (h >> 60) % OC_SHARDS];

    pthread_mutex_lock (&sh->lock);
    if (--s->refs == 0 && s->state == OC_GONE)
        slot_free (c, s);
    pthread_mutex_unlock (&sh->lock);
}

void
oc_counters (struct objcache *c, uint64_t *loads, uint64_t *hits, uint64_t *waits, size_t *bytes)
{
    *loads = *hits = *waits = 0;
    *bytes = 0;
    for (size_t i = 0; i < OC_SHARDS; i++) {
        pthread_mutex_lock (&c->shard[i].lock);
        *loads += c->loads[i];
        *hits += c->hits[i];
        *waits += c->waits[i];
        *bytes += c->shard[i].bytes;
        pthread_mutex_unlock (&c->shard[i].lock);
    }
}
