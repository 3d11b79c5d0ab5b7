/* The image server's connections and socket (server.c). */
#ifndef CAPSA_IMAGEFUSE_SERVER_H
#define CAPSA_IMAGEFUSE_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "imagefuse/imagefuse.h"
#include "lib/error.h"

struct server {
    struct sqi_image *img;
    /* What it serves: clients must bring the same. */
    struct stat id;         /* of the image file */
    uint64_t offset, part_size;
    bool encrypted;
    uint8_t *key;           /* the key record (secure memory) */
    size_t keylen;
    /* The shared socket (listen_fd -1: a private server). */
    int listen_fd, dir_fd;
    char *sock_name;
    ino_t sock_ino;
    unsigned linger_ms;
    /* Connections. */
    pthread_mutex_t lock;
    struct session *sessions;
    unsigned nsessions, total;
    bool stopping;          /* its name is gone: no new connection */
    int event_fd;           /* a connection ended */
};

void server_init (struct server *srv, struct sqi_image *img);
/* Listen on NAME in the directory DIR_FD (kept). */
int server_listen (struct server *srv, int dir_fd, const char *name, capsa_error_t *err);
/* Serve until the last connection ended and the linger is over (or a
 * signal).  0, or -1. */
int server_run (struct server *srv);

#endif
