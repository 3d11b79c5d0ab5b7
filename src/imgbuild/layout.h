/* Apptainer's image layout: the /.singularity.d skeleton and the metadata
 * a build writes (runscript, environment, labels.json, help, test, the
 * definition file), and the inspect-metadata.json SIF object made from it.
 *
 * Everything is written through a struct layout, which either writes into
 * a tree (a root being built, through src/imgbuild/tree.h) or, to make a SIF
 * from a directory without copying it, only plans the additions as
 * mksquashfs pseudo files: contents staged in a private directory, the
 * replaced originals excluded.  Reads see the planned result either way. */
#ifndef CAPSA_BUILD_LAYOUT_H
#define CAPSA_BUILD_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "imgbuild/deffile.h"
#include "lib/error.h"
#include "lib/utils.h"

struct layout_entry; /* a planned pseudo file */

struct layout {
    int rootfd; /* the tree (borrowed) */
    bool pseudo;
    /* pseudo mode: */
    int stagefd;              /* staging directory (borrowed) */
    struct layout_entry *plan;
    size_t nplan;
    struct strv excludes;     /* source paths replaced by planned ones */
    bool unsupported;         /* a parent in the source is not a plain directory */
};

/* Start a layout over ROOTFD; in pseudo mode file contents go to files
 * named 1, 2, ... in the directory STAGEFD. */
void layout_init (struct layout *l, int rootfd, bool pseudo, int stagefd);
void layout_free (struct layout *l);

/* Labels and choices of one build. */
struct layout_opts {
    const struct deffile *def; /* the recipe (for a directory or image: "bootstrap: localimage") */
    bool overwrite_base;       /* rewrite the skeleton files (fresh debootstrap root) */
    bool force;                /* recipe labels replace existing ones */
    const char *version;       /* capsa's version, for the labels */
    const char *arch;          /* Go architecture name */
    void (*warn) (const char *msg, void *data);
    void *data;
};

/* Directories, files and symlinks every image gets (Apptainer's makeBaseEnv). */
int layout_base (struct layout *l, const struct layout_opts *o, capsa_error_t *err);
/* debootstrap's default runscript. */
int layout_default_runscript (struct layout *l, capsa_error_t *err);
/* After %post: help, labels.json, the definition file, %environment,
 * %startscript, %runscript, %test. */
int layout_metadata (struct layout *l, const struct layout_opts *o, capsa_error_t *err);
/* The inspect-metadata.json object of the result (new string). */
int layout_inspect_json (struct layout *l, char **out, capsa_error_t *err);

/* Pseudo mode: write the pseudo definitions (for mksquashfs -pf) and the
 * exclusions (for -ef) to files NAMEs in the staging directory.  Returns
 * false (nothing written) when there is nothing to add. */
int layout_write_pseudo (struct layout *l, const char *pf_name, const char *ef_name, bool *any,
                         capsa_error_t *err);

#endif
