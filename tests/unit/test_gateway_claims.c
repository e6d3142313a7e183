/*
 * Notification claims without their database (notify/claims.h, docs/ha.md):
 * what each hub does when PostgreSQL cannot be reached (a port nothing
 * listens on: refused at once). The priority-1 hub sends unclaimed; the
 * priority-2 hub waits while the priority-1 hub's status says online, and
 * sends unclaimed once it has said offline for takeover_s (here 1 s); its
 * own status, a hub of the same priority, a status without "ha" and junk
 * change nothing. Forwarding claims (SensorThings) follow the same rules,
 * and their keys' array literals are quoted. Claims won and lost against a
 * real PostgreSQL are in tests/integration/test_notify_claims.py and
 * test_upstream_sta_claims.py.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "agri/buf.h"
#include "agri/util.h"
#include "gateway/config.h"
#include "notify/claims.h"

static const char *status(const char *hub, int prio, const char *state)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "{\"v\":1,\"hub\":\"gw-%s\",\"state\":\"%s\","
		 "\"ha\":{\"hub_id\":\"%s\",\"priority\":%d}}", hub, state, hub, prio);
	return buf;
}

static void feed(struct claims *c, const char *s)
{
	claims_hub_status(c, s, strlen(s));
}

static struct claims *make(struct gateway_config *cfg, const char *hub, int prio)
{
	int err = 0;
	struct claims *c;

	gateway_config_defaults(cfg);
	cfg->ha.enabled = true;
	snprintf(cfg->ha.hub_id, sizeof(cfg->ha.hub_id), "%s", hub);
	/* nothing listens on port 1: refused at once */
	snprintf(cfg->ha.claims, sizeof(cfg->ha.claims), "host=127.0.0.1 port=1 dbname=agri");
	snprintf(cfg->ha.claims_sslmode, sizeof(cfg->ha.claims_sslmode), "disable");
	cfg->ha.priority = prio;
	cfg->ha.takeover_s = 1;
	c = claims_new(cfg, &err);
	CHECK(c != NULL);
	CHECK_INT(err, 0);
	return c;
}

static enum claim_verdict take(struct claims *c, int64_t *wait_ms)
{
	const struct claim_key k = {.episode = "salinity/DT-W01/sonde1@1750000000000",
				    .transition = "raised", .channel = "ops", .recipient = ""};
	char winner[64];

	return claims_take(c, &k, winner, sizeof(winner), wait_ms);
}

static void test_none(void)
{
	struct gateway_config *cfg = calloc(1, sizeof(*cfg));
	int err = -1;

	gateway_config_defaults(cfg);
	CHECK(claims_new(cfg, &err) == NULL);
	CHECK_INT(err, 0); /* no ha: no claims, not an error */
	CHECK_INT(claims_metrics_text(NULL, NULL, 0), 0);
	free(cfg);
}

static void test_priority1(void)
{
	struct gateway_config *cfg = calloc(1, sizeof(*cfg));
	struct claims *c = make(cfg, "hub-a", 1);
	int64_t wait_ms, t0 = util_mono_ms();
	char buf[2048];

	CHECK_INT(take(c, &wait_ms), CLAIM_UNCLAIMED);
	CHECK(util_mono_ms() - t0 < CLAIMS_IO_MS); /* bounded */
	/* in backoff: no new connect, the same answer at once */
	CHECK_INT(take(c, &wait_ms), CLAIM_UNCLAIMED);
	claims_sent_unclaimed(c);
	CHECK(claims_metrics_text(c, buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "agri_gateway_notifications_unclaimed_total 1\n") != NULL);
	CHECK(strstr(buf, "agri_gateway_claims_up 0\n") != NULL);
	CHECK(claims_status_fields(c, buf, sizeof(buf)) > 0);
	CHECK(strcmp(buf, ",\"ha\":{\"hub_id\":\"hub-a\",\"priority\":1},"
		     "\"notifications_unclaimed\":1") == 0);
	claims_cancel(c);
	CHECK_INT(take(c, &wait_ms), CLAIM_WAIT); /* stopping: the row stays */
	claims_free(c);
	free(cfg);
}

static void test_priority2(void)
{
	struct gateway_config *cfg = calloc(1, sizeof(*cfg));
	struct claims *c = make(cfg, "hub-b", 2);
	int64_t wait_ms;

	feed(c, status("hub-a", 1, "online"));
	CHECK_INT(take(c, &wait_ms), CLAIM_WAIT);
	CHECK(wait_ms > 0 && wait_ms <= 1000);
	/* its own status, a second priority 2, a status without ha, junk: nothing */
	feed(c, status("hub-b", 2, "offline"));
	feed(c, status("hub-c", 2, "offline"));
	feed(c, "{\"v\":1,\"hub\":\"gw-a\",\"state\":\"offline\"}");
	feed(c, "not json");
	claims_hub_status(c, "", 0);
	util_sleep_ms(1100);
	CHECK_INT(take(c, &wait_ms), CLAIM_WAIT);
	/* the priority-1 hub's Last Will: wait takeover_s, then send */
	feed(c, status("hub-a", 1, "offline"));
	CHECK_INT(take(c, &wait_ms), CLAIM_WAIT);
	CHECK(wait_ms > 0 && wait_ms <= 1000);
	util_sleep_ms(1100);
	CHECK_INT(take(c, &wait_ms), CLAIM_UNCLAIMED);
	/* back online: wait again */
	feed(c, status("hub-a", 1, "online"));
	CHECK_INT(take(c, &wait_ms), CLAIM_WAIT);
	claims_free(c);

	/* never heard of a priority-1 hub: offline since our start */
	c = make(cfg, "hub-b", 2);
	CHECK_INT(take(c, &wait_ms), CLAIM_WAIT);
	util_sleep_ms(1100);
	CHECK_INT(take(c, &wait_ms), CLAIM_UNCLAIMED);
	claims_free(c);
	free(cfg);
}

/* Forwarding claims (SensorThings) follow the same rules without their
 * database: the priority-1 hub sends and makes entities unclaimed, the
 * other waits until the priority-1 hub has said offline for takeover_s. */
static void test_observations(void)
{
	struct gateway_config *cfg = calloc(1, sizeof(*cfg));
	struct claims *c = make(cfg, "hub-a", 1);
	struct claim_obs o[2] = {{.datastream = "DT-W01/sonde1/salinity", .ts_ms = 1750000000000},
				 {.datastream = "DT-W01/sonde1/ec", .ts_ms = 1750000000000}};
	const bool unclaimed[2] = {true, true};
	int64_t wait_ms, t0 = util_mono_ms();
	char buf[4096];

	claims_want_observations(c);
	CHECK_INT(claims_lease_ms(c), 1000);
	CHECK_INT(claims_back_ms(c), 0);
	CHECK_INT(claims_obs_take(c, o, 2, &wait_ms), CLAIM_UNCLAIMED);
	CHECK(util_mono_ms() - t0 < CLAIMS_IO_MS);
	CHECK_INT(claims_entity_lock(c, "sta:Things/DT-W01", &wait_ms), CLAIM_UNCLAIMED);
	claims_entity_unlock(c, "sta:Things/DT-W01"); /* nothing held: nothing done */
	claims_obs_unclaimed(c, 2);
	CHECK(claims_obs_record(c, o, unclaimed, 2) < 0); /* away: later */
	CHECK(claims_obs_sent(c, o, 2) == 0);            /* nothing claimed: nothing to mark */
	claims_obs_prune(c);                             /* away: quiet */
	CHECK(claims_metrics_text(c, buf, sizeof(buf)) > 0);
	CHECK(strstr(buf, "agri_gateway_sta_unclaimed_total 2\n") != NULL);
	CHECK(strstr(buf, "agri_gateway_sta_claims_won_total 0\n") != NULL);
	CHECK(claims_status_fields(c, buf, sizeof(buf)) > 0);
	CHECK(strcmp(buf, ",\"ha\":{\"hub_id\":\"hub-a\",\"priority\":1},"
		     "\"notifications_unclaimed\":0,\"observations_unclaimed\":2") == 0);
	CHECK(claims_status_fields(c, buf, 40) == -ENOSPC);
	claims_free(c);

	c = make(cfg, "hub-b", 2);
	claims_want_observations(c);
	feed(c, status("hub-a", 1, "online"));
	CHECK_INT(claims_obs_take(c, o, 2, &wait_ms), CLAIM_WAIT);
	CHECK(wait_ms > 0 && wait_ms <= 1000);
	CHECK_INT(claims_entity_lock(c, "sta:Things/DT-W01", &wait_ms), CLAIM_WAIT);
	feed(c, status("hub-a", 1, "offline"));
	util_sleep_ms(1100);
	CHECK_INT(claims_obs_take(c, o, 2, &wait_ms), CLAIM_UNCLAIMED);
	CHECK_INT(claims_entity_lock(c, "sta:Things/DT-W01", &wait_ms), CLAIM_UNCLAIMED);
	claims_cancel(c);
	CHECK_INT(claims_obs_take(c, o, 2, &wait_ms), CLAIM_WAIT); /* stopping */
	claims_free(c);
	free(cfg);
}

/* The keys go to PostgreSQL as array literals: each element quoted, its
 * quotes and backslashes escaped. */
static void test_pg_array(void)
{
	const char *v[] = {"DT-W01/sonde1/salinity", "a\"b", "c\\d", "", "{x,y}"};
	char store[256];
	struct agri_buf b;

	agri_buf_init(&b, store, sizeof(store));
	claims_pg_array(&b, v, 5);
	CHECK(agri_buf_end(&b) > 0);
	CHECK(strcmp(store, "{\"DT-W01/sonde1/salinity\",\"a\\\"b\",\"c\\\\d\",\"\","
		     "\"{x,y}\"}") == 0);
	agri_buf_init(&b, store, sizeof(store));
	claims_pg_array(&b, v, 0);
	CHECK(strcmp(store, "{}") == 0);
}

int main(void)
{
	test_none();
	test_priority1();
	test_priority2();
	test_observations();
	test_pg_array();
	return test_main("test_gateway_claims");
}
