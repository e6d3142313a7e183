/*
 * SQLite result codes as negative errnos: the one map the gateway's store
 * and the station's spool share (SQLITE_FULL -> -ENOSPC, BUSY/LOCKED ->
 * -EBUSY, IOERR -> -EIO, READONLY -> -EROFS, NOMEM -> -ENOMEM, CORRUPT and
 * NOTADB -> -EUCLEAN, CANTOPEN/PERM/AUTH -> -EACCES, CONSTRAINT, MISMATCH
 * and RANGE -> -EINVAL, TOOBIG -> -E2BIG, anything else -> -EIO; OK, DONE
 * and ROW -> 0). Extended codes are reduced to their primary code.
 */
#ifndef AGRI_SQLITE_ERRNO_H
#define AGRI_SQLITE_ERRNO_H

int agri_sqlite_errno(int sqlite_rc);

#endif
