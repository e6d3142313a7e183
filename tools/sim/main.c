/*
 * agri-sim: simulated Modbus sensors (docs/interfaces.md §1, docs/sim.md).
 * Parses the command line, loads the profiles, then serves until SIGTERM
 * or SIGINT, or prints a --series and exits.
 * Exit codes: 0 ok, 1 runtime failure (device/socket), 2 bad flag,
 * 78 bad profile.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/exit.h"
#include "agri/log.h"
#include "sim.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		sim_plug_requests++;
	else
		stop_flag = 1;
}

int main(int argc, char **argv)
{
	static struct sim s;
	struct sigaction sa;
	char why[600];
	int rc;

	rc = sim_parse_args(&s, argc, argv, why, sizeof(why));
	if (rc == 1)
		return 0;
	if (rc) {
		fprintf(stderr, "agri-sim: %s (see --help)\n", why);
		return AGRI_EXIT_USAGE;
	}
	if (sim_load(&s, why, sizeof(why))) {
		fprintf(stderr, "%s\n", why);
		return AGRI_EXIT_CONFIG;
	}
	if (s.series) {
		rc = sim_series(&s, stdout);
		sim_free(&s);
		return rc ? 1 : 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = server_run(&s, &stop_flag);
	sim_free(&s);
	if (rc) {
		log_error("sim", "cannot serve err=\"%s\"", strerror(-rc));
		return 1;
	}
	return 0;
}
