/*
 * The programs' exit codes (docs/interfaces.md §1), one list for
 * agri-station, agri-gateway, agrictl and agri-sim: 0 success, 1 a
 * failure at run time, 2 a bad command line, 65 bad input data (a
 * history import), 78 a bad configuration file ("FILE: path: reason";
 * nothing starts). 65 and 78 are sysexits.h's EX_DATAERR and EX_CONFIG.
 */
#ifndef AGRI_EXIT_H
#define AGRI_EXIT_H

#define AGRI_EXIT_FAIL 1
#define AGRI_EXIT_USAGE 2
#define AGRI_EXIT_DATAERR 65
#define AGRI_EXIT_CONFIG 78

#endif
