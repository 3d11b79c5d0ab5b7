/* A thread-safe cache of immutable objects keyed by two 64-bit numbers,
 * with a byte budget: sharded hash tables, each shard under its own mutex
 * with its own least-recently-used list.
 *
 * oc_get() returns the object with a reference, loading it with the
 * cache's loader when it is missing.  While one thread loads a key, the
 * others that want it wait for that load instead of doing it again
 * (so a block is decompressed once).  Objects past the budget leave the
 * cache, oldest first, and are freed when their last reference is given
 * back (oc_put). */
#ifndef CAPSA_OBJCACHE_H
#define CAPSA_OBJCACHE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define OC_SHARDS 16

struct oc_slot;

/* Make the object for (k1, k2): *obj and its cost in bytes; 0 or a
 * negative errno.  SLOT is where it will live (an object may keep it, to
 * give its reference back with oc_put). */
typedef int (*oc_load_fn) (void *ctx, uint64_t k1, uint64_t k2, struct oc_slot *slot, void **obj, size_t *cost);
typedef void (*oc_free_fn) (void *obj);

struct oc_shard {
    pthread_mutex_t lock;
    pthread_cond_t loaded;
    struct oc_slot **buckets;
    size_t nbuckets, count, bytes;
    struct oc_slot *lru_head, *lru_tail; /* head: most recently used */
};

struct objcache {
    struct oc_shard shard[OC_SHARDS];
    size_t shard_budget;
    oc_load_fn load;
    oc_free_fn free;
    void *ctx;
    /* Counters (under the shards' locks, summed on reading). */
    uint64_t loads[OC_SHARDS], hits[OC_SHARDS], waits[OC_SHARDS];
};

void oc_init (struct objcache *c, size_t budget, oc_load_fn load, oc_free_fn free, void *ctx);
/* Free every object (no reference may be outstanding). */
void oc_destroy (struct objcache *c);
/* The object for (k1, k2) with a reference: 0, or the loader's error. */
int oc_get (struct objcache *c, uint64_t k1, uint64_t k2, struct oc_slot **slot);
void *oc_obj (const struct oc_slot *slot);
void oc_put (struct objcache *c, struct oc_slot *slot);
void oc_counters (struct objcache *c, uint64_t *loads, uint64_t *hits, uint64_t *waits, size_t *bytes);

#endif
