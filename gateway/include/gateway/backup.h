/*
 * The hub's backup and restore commands for main.c (docs/recovery.md):
 * `agri-gateway backup [--config FILE] DEST` and
 * `agri-gateway restore [--config FILE] [--force|--check] SRC`.
 * The code is gateway/src/core/backup.c (core/backup.h).
 */
#ifndef GATEWAY_BACKUP_H
#define GATEWAY_BACKUP_H

/* argv[0] is "backup" or "restore". Returns the process's exit code
 * (0, 1 failed, 2 usage, 78 bad config). */
int backup_main(int argc, char **argv);

#endif
