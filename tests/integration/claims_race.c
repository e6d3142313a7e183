/*
 * Two hubs that start together claim their first notification at the same
 * moment (test_notify_claims.py): each round drops agri_notify_claims, then
 * hub-a (priority 1) and hub-b (priority 2), each with a claims connection
 * of its own, take the same claim from two threads released together.
 * Exactly one must win and the other find its claim; a hub that took the
 * database for unreachable (its table creation lost the race inside
 * PostgreSQL's catalogue) would send unclaimed or wait, and both hubs would
 * notify.
 *
 *   claims_race CONNINFO ROUNDS
 * Prints "rounds N failed F" and exits 1 when F > 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "gateway/config.h"
#include "notify/claims.h"

struct side {
	struct claims *c;
	pthread_barrier_t *go;
	enum claim_verdict v;
	char winner[64];
};

static const struct claim_key key = {.episode = "salinity/DT-W01/sonde1@1750000000000",
				     .transition = "raised", .channel = "ops",
				     .recipient = ""};

static void *take(void *arg)
{
	struct side *s = arg;
	int64_t wait_ms;

	pthread_barrier_wait(s->go);
	s->v = claims_take(s->c, &key, s->winner, sizeof(s->winner), &wait_ms);
	return NULL;
}

static struct claims *hub(struct gateway_config *cfg, const char *conninfo, const char *id,
			  int prio)
{
	int err = 0;

	gateway_config_defaults(cfg);
	cfg->ha.enabled = true;
	snprintf(cfg->ha.hub_id, sizeof(cfg->ha.hub_id), "%s", id);
	snprintf(cfg->ha.claims, sizeof(cfg->ha.claims), "%s", conninfo);
	snprintf(cfg->ha.claims_sslmode, sizeof(cfg->ha.claims_sslmode), "disable");
	cfg->ha.priority = prio;
	cfg->ha.takeover_s = 60;
	return claims_new(cfg, &err);
}

int main(int argc, char **argv)
{
	static struct gateway_config ca, cb;
	static const char *names[] = {"won", "peer", "unclaimed", "wait"};
	int rounds, failed = 0;
	PGconn *admin;

	if (argc != 3 || (rounds = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: claims_race CONNINFO ROUNDS\n");
		return 2;
	}
	admin = PQconnectdb(argv[1]);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "claims_race: %s", PQerrorMessage(admin));
		return 2;
	}
	for (int i = 0; i < rounds; i++) {
		struct side s[2] = {{0}, {0}};
		pthread_barrier_t go;
		pthread_t t[2];

		PQclear(PQexec(admin, "DROP TABLE IF EXISTS agri_notify_claims"));
		pthread_barrier_init(&go, NULL, 2);
		s[0].c = hub(&ca, argv[1], "hub-a", 1);
		s[1].c = hub(&cb, argv[1], "hub-b", 2);
		if (!s[0].c || !s[1].c) {
			fprintf(stderr, "claims_race: claims_new failed\n");
			return 2;
		}
		for (int j = 0; j < 2; j++) {
			s[j].go = &go;
			pthread_create(&t[j], NULL, take, &s[j]);
		}
		for (int j = 0; j < 2; j++)
			pthread_join(t[j], NULL);
		if (!((s[0].v == CLAIM_WON && s[1].v == CLAIM_PEER) ||
		      (s[0].v == CLAIM_PEER && s[1].v == CLAIM_WON))) {
			failed++;
			printf("round %d: hub-a %s, hub-b %s\n", i, names[s[0].v], names[s[1].v]);
		}
		for (int j = 0; j < 2; j++)
			claims_free(s[j].c);
		pthread_barrier_destroy(&go);
	}
	PQfinish(admin);
	printf("rounds %d failed %d\n", rounds, failed);
	return failed ? 1 : 0;
}
