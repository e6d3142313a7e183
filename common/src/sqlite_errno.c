/* SQLite result codes as negative errnos (see agri/sqlite_errno.h). */
#include "agri/sqlite_errno.h"

#include <errno.h>

#include <sqlite3.h>

int agri_sqlite_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return 0;
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_READONLY: return -EROFS;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_CORRUPT: case SQLITE_NOTADB: return -EUCLEAN;
	case SQLITE_CANTOPEN: case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
	case SQLITE_CONSTRAINT: case SQLITE_MISMATCH: case SQLITE_RANGE: return -EINVAL;
	case SQLITE_TOOBIG: return -E2BIG;
	default: return -EIO;
	}
}
