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
    struct capsa_crypt_image *volume; /* an encrypted image, opened */
    uint8_t *salt;          /* of the digests of secrets that open it (keys.c), */
    uint8_t (*digests)[32]; /* both in locked memory */
    size_t ndigests;
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
    unsigned clients;       /* requests being answered (threads) */
    int event_fd;           /* a connection or a request ended */
};

struct capsa_crypt_image;

void server_init (struct server *srv, struct sqi_image *img);
/* keys.c: open the encrypted image with the first container's key record
 * (INFO: lines for the monitor), and check a later container's record:
 * 0 it opens the same image, 1 another one, -1 an error (a wrong key). */
int keys_open (struct server *srv, int fd, uint64_t off, uint64_t size, const uint8_t *rec, size_t len,
               struct capsa_crypt_image **out, char *info, size_t infolen, capsa_error_t *err);
int keys_check (struct server *srv, int fd, const uint8_t *rec, size_t len, char *info, size_t infolen,
                capsa_error_t *err);
/* Listen on NAME in the directory DIR_FD (kept). */
int server_listen (struct server *srv, int dir_fd, const char *name, capsa_error_t *err);
/* Serve until the last connection ended and the linger is over (or a
 * signal).  0, or -1. */
int server_run (struct server *srv);

#endif
