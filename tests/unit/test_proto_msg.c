/*
 * Unit tests of agri/msg.h and agri/json.h: canonical messages of every
 * kind round-trip byte for byte, a corpus of malformed messages each
 * fails with its exact JSON path and reason, a batch with bad readings
 * keeps its good ones, and the encoders refuse what the decoders would.
 * JSON in the tables is written with ' for " (see jq()).
 */
#include <errno.h>
#include <stdlib.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/msg.h"
#include "agri/topic.h"
#include "test.h"

enum kind { K_TEL, K_STATUS, K_ACK, K_CACK, K_ALERT, K_CVER };

static struct agri_reading readings[AGRI_BATCH_MAX_READINGS];
static struct agri_telemetry tel = {.readings = readings, .cap = AGRI_BATCH_MAX_READINGS};
static struct agri_status status;
static struct agri_ack ack;
static struct agri_config_ack cack;
static struct agri_alert alert;
static int64_t cver;

/* Returns s with every ' turned into " (rotating static buffers). */
static const char *jq(const char *s)
{
	static char pool[4][16384];
	static int next;
	char *d = pool[next++ & 3];
	size_t i;

	for (i = 0; s[i] && i < sizeof(pool[0]) - 1; i++)
		d[i] = s[i] == '\'' ? '"' : s[i];
	d[i] = '\0';
	return d;
}

static int decode(enum kind k, const char *json, size_t len, struct agri_err *err)
{
	switch (k) {
	case K_TEL:
		return agri_telemetry_decode(json, len, &tel, err);
	case K_STATUS:
		return agri_status_decode(json, len, &status, err);
	case K_ACK:
		return agri_ack_decode(json, len, &ack, err);
	case K_CACK:
		return agri_config_ack_decode(json, len, &cack, err);
	case K_ALERT:
		return agri_alert_decode(json, len, &alert, err);
	case K_CVER:
		return agri_config_version(json, len, &cver, err);
	}
	return -EINVAL;
}

static int encode(enum kind k, char *buf, size_t len)
{
	switch (k) {
	case K_TEL:
		return agri_telemetry_encode(&tel, buf, len);
	case K_STATUS:
		return agri_status_encode(&status, buf, len);
	case K_ACK:
		return agri_ack_encode(&ack, buf, len);
	case K_CACK:
		return agri_config_ack_encode(&cack, buf, len);
	case K_ALERT:
		return agri_alert_encode(&alert, buf, len);
	default:
		return -EINVAL;
	}
}

#define TS "'2026-11-22T15:04:00.000Z'"
#define ENV "{'v':1,'station':'DT-W01','seq':7,'sent_at':'2026-11-22T15:04:05.123Z','readings':["
#define RD(v, q) "{'ts':" TS ",'sensor':'sonde1','metric':'salinity','value':" v ",'unit':'g/L','q':'" q "'}"
#define R_OK RD("3.42", "ok")
#define TEL(r) ENV r "]}"
#define ALERT_HEAD "{'v':1,'id':'salinity-critical/DT-W01/sonde1','rule':'salinity-critical','station':'DT-W01','sensor':'sonde1'"

/* ---- canonical messages: decode, re-encode, byte for byte ---- */

static const struct {
	enum kind k;
	const char *json;
} canonical[] = {
	{K_TEL, TEL(R_OK)},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':1042,'sent_at':'2026-11-22T15:04:05.123Z','readings':["
		RD("3.42", "ok") "," RD("null", "error") "," RD("-0.1", "suspect") ","
		RD("1234567", "maint") "," RD("0.30000000000000004", "ok") "," RD("1e+21", "ok") ","
		RD("-0", "ok") "," RD("1.7976931348623157e+308", "ok") "," RD("1e-07", "ok") ","
		"{'ts':'2028-02-29T23:59:59.999Z','sensor':'t-1','metric':'water_temperature',"
		"'value':28.5,'unit':'\xc2\xb0""C','q':'ok'},"
		"{'ts':'1970-01-01T00:00:00.000Z','sensor':'A_','metric':'ph','value':7,'unit':'','q':'ok'}]}"},
	{K_TEL, "{'v':1,'station':'abcdefghijklmnopqrstuvwxyz012345','seq':9007199254740991,"
		"'sent_at':'9999-12-31T23:59:59.999Z','readings':[" R_OK "]}"},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'offline'}"},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','fw':'0.1.0','board':'host',"
		   "'config_version':3,'ts':'2026-11-22T15:04:05.123Z','uptime_s':86400,"
		   "'spool_depth':2,'spool_dropped':1,'last_seq':1042,'maintenance':true,"
		   "'sensors':[{'name':'sonde1','profile':'sensecap-s-ec-01','reads_ok':100,"
		   "'reads_failed':2,'timeouts':1,'crc_errors':1,'exceptions':0},"
		   "{'name':'trap1','reads_ok':0,'reads_failed':0,'timeouts':0,'crc_errors':0,"
		   "'exceptions':0}]}"},
	{K_ACK, "{'v':1,'station':'DT-W01','seqs':[[1042,1042]]}"},
	{K_ACK, "{'v':1,'station':'DT-W01','seqs':[[0,5],[7,7],[9,9007199254740991]]}"},
	{K_CACK, "{'v':1,'station':'DT-W01','version':4,'result':'applied'}"},
	{K_CACK, "{'v':1,'station':'DT-W01','version':5,'result':'rejected',"
		 "'error':'sensors[0].slave: must be between 1 and 247 \\\"x\\\" \\\\ \\n\\t\\u0001'}"},
	{K_ALERT, ALERT_HEAD ",'metric':'salinity','severity':'critical','state':'active',"
		  "'value':4.3,'threshold':4,'raised_at':'2026-11-22T15:04:05.123Z',"
		  "'updated_at':'2026-11-22T15:05:00.000Z','message':'Salinity 4.3 g/L >= 4 g/L'}"},
	{K_ALERT, "{'v':1,'id':'station-offline/DT-W01','rule':'station-offline','station':'DT-W01',"
		  "'severity':'warning','state':'cleared','value':null,'threshold':null,"
		  "'raised_at':'2026-11-22T15:04:05.123Z','updated_at':'2026-11-22T16:00:00.000Z',"
		  "'message':'Tr\xe1\xba\xa1m V\xc3\xa0m K\xc3\xaanh offline'}"},
	/* signed configs: who signed the running config, who signed an acked one */
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','config_version':7,"
		   "'config_signed_by':'alice'}"},
	{K_CACK, "{'v':1,'station':'DT-W01','version':7,'result':'applied','signed_by':'alice'}"},
	/* issue 27: the hub a station with broker.urls is on */
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','fw':'0.1.0',"
		   "'broker':'ssl://hub-b.agri.local:8883','config_version':7}"},
	/* issue 22: a config on probation, the oldest unacked batch, bus and sensor health */
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','config_version':7,"
		   "'probation':8,'config_failed':{'version':6,'at':'2026-11-22T15:00:00.000Z',"
		   "'error':'probation: bus rs485: /dev/ttyUSB9: no such device'},"
		   "'ts':'2026-11-22T15:04:05.123Z','spool_depth':3,"
		   "'spool_oldest':'2026-11-22T14:00:00.000Z',"
		   "'buses':[{'name':'rs485','state':'down','since':'2026-11-22T15:00:00.000Z',"
		   "'error':'/dev/ttyUSB9: no such device'},{'name':'lan','state':'open'}],"
		   "'sensors':[{'name':'sonde1','reads_ok':5,'reads_failed':2,'timeouts':2,"
		   "'crc_errors':0,'exceptions':0,'last_ok':'2026-11-22T15:03:00.000Z',"
		   "'last_error':'timeout: slave 9 does not answer; other sensors on lan do',"
		   "'last_error_at':'2026-11-22T15:04:00.000Z','maintenance':true}]}"},
	{K_CACK, "{'v':1,'station':'DT-W01','version':8,'result':'rejected',"
		 "'error':'station: this config is for \\\"DT-W02\\\", not this station','signed_by':'Nguyen_Van-A'}"},
};

static void test_canonical(void)
{
	static char buf[300 * 1024];
	struct agri_err err;

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(canonical); i++) {
		const char *json = jq(canonical[i].json);
		int ret = decode(canonical[i].k, json, strlen(json), &err);

		CHECK_INT(ret, 0);
		if (ret) {
			fprintf(stderr, "  canonical[%zu]: %s: %s\n", i, err.path, err.msg);
			continue;
		}
		ret = encode(canonical[i].k, buf, sizeof(buf));
		CHECK_INT(ret, strlen(json));
		CHECK_STR(buf, json);
		/* One byte short of the NUL: -ENOSPC. */
		CHECK_INT(encode(canonical[i].k, buf, strlen(json)), -ENOSPC);
	}
}

/* Valid but not canonical: decode, then encode gives the canonical form. */
static void test_normalize(void)
{
	static const struct {
		enum kind k;
		const char *in, *out;
	} cases[] = {
		{K_TEL, " {\n\t'readings' : [ {'q':'ok','unit':'g\\/L','value':3.420,'metric':'salinity',"
			"'sensor':'sonde1','ts':'2026-11-22T22:04:00+07:00'} ],'sent_at':"
			"'2026-11-22T15:04:05.1239Z','seq':7.0,'station':'DT-W01','v':1} \r\n",
		 TEL(R_OK)},
		{K_TEL, TEL(RD("3.42E0", "ok")), TEL(R_OK)},
		{K_TEL, TEL(RD("342e-2", "ok")), TEL(R_OK)},
		{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','fw':'','board':null,"
			   "'uptime_s':0,'future_counter':{'a':[1,2]},'maintenance':false,'sensors':[]}",
		 "{'v':1,'station':'DT-W01','state':'online'}"},
		{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','sensors':[{'name':'s1','extra':1}]}",
		 "{'v':1,'station':'DT-W01','state':'online','sensors':[{'name':'s1','reads_ok':0,"
		 "'reads_failed':0,'timeouts':0,'crc_errors':0,'exceptions':0}]}"},
		{K_CACK, "{'v':1,'station':'DT-W01','version':4,'result':'applied','error':''}",
		 "{'v':1,'station':'DT-W01','version':4,'result':'applied'}"},
		{K_ALERT, "{'v':1,'id':'do-low/S1','rule':'do-low','station':'S1','severity':'warning',"
			  "'state':'acknowledged','raised_at':'2026-11-22T15:04:05Z',"
			  "'updated_at':'2026-11-22T15:04:05Z','message':'\\u0044O \\u00e9'}",
		 "{'v':1,'id':'do-low/S1','rule':'do-low','station':'S1','severity':'warning',"
		 "'state':'acknowledged','value':null,'threshold':null,'raised_at':"
		 "'2026-11-22T15:04:05.000Z','updated_at':'2026-11-22T15:04:05.000Z','message':'DO \xc3\xa9'}"},
	};
	char buf[4096];
	struct agri_err err;

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
		const char *in = jq(cases[i].in), *out = jq(cases[i].out);

		CHECK_INT(decode(cases[i].k, in, strlen(in), &err), 0);
		CHECK_INT(encode(cases[i].k, buf, sizeof(buf)), strlen(out));
		CHECK_STR(buf, out);
	}
}

static void test_decoded_fields(void)
{
	const char *json = jq(canonical[1].json);
	struct agri_err err;

	CHECK_INT(agri_telemetry_decode(json, strlen(json), &tel, &err), 0);
	CHECK_STR(tel.station, "DT-W01");
	CHECK_INT(tel.seq, 1042);
	CHECK_INT(tel.sent_at_ms, 1795359845123LL);
	CHECK_INT(tel.n, 11);
	CHECK_INT(tel.n_invalid, 0);
	CHECK(tel.has_station && tel.has_seq);
	CHECK_INT(readings[0].ts_ms, 1795359840000LL);
	CHECK_STR(readings[0].sensor, "sonde1");
	CHECK_STR(readings[0].metric, "salinity");
	CHECK_STR(readings[0].unit, "g/L");
	CHECK_NEAR(readings[0].value, 3.42, 0);
	CHECK(readings[0].has_value);
	CHECK_INT(readings[0].q, AGRI_Q_OK);
	CHECK(!readings[1].has_value);
	CHECK_INT(readings[1].q, AGRI_Q_ERROR);
	CHECK_INT(readings[2].q, AGRI_Q_SUSPECT);
	CHECK_INT(readings[3].q, AGRI_Q_MAINT);
	CHECK_STR(readings[9].unit, "\xc2\xb0""C");

	json = jq(canonical[4].json);
	CHECK_INT(agri_status_decode(json, strlen(json), &status, &err), 0);
	CHECK(status.online && status.maintenance);
	CHECK_INT(status.config_version, 3);
	CHECK_INT(status.n_sensors, 2);
	CHECK_STR(status.sensors[0].profile, "sensecap-s-ec-01");
	CHECK_INT(status.sensors[0].reads_failed, 2);

	json = jq(canonical[9].json);
	CHECK_INT(agri_alert_decode(json, strlen(json), &alert, &err), 0);
	CHECK_STR(alert.sensor, "sonde1");
	CHECK_INT(alert.state, AGRI_ALERT_ACTIVE);
	CHECK(alert.has_value && alert.has_threshold);
	CHECK_NEAR(alert.threshold, 4.0, 0);

	json = jq("{'station':'DT-W01','version':12,'broker':{'url':'tcp://x'}}");
	CHECK_INT(agri_config_version(json, strlen(json), &cver, &err), 0);
	CHECK_INT(cver, 12);
}

/* ---- the malformed corpus ---- */

static const struct {
	enum kind k;
	const char *json;
	int ret; /* 1: telemetry batch with skipped readings */
	const char *path, *msg;
} bad[] = {
	/* not JSON at all */
	{K_TEL, "", -EBADMSG, "", "empty document"},
	{K_TEL, " \n ", -EBADMSG, "", "empty document"},
	{K_TEL, "{", -EBADMSG, "", "invalid JSON at byte"},
	{K_TEL, "{'v':1,}", -EBADMSG, "", "invalid JSON at byte 7"},
	{K_TEL, "{'v':1 'station':'X'}", -EBADMSG, "", "invalid JSON at byte"},
	{K_TEL, "{'v':1,'station':'DT-W01", -EBADMSG, "", "invalid JSON"},
	{K_TEL, "{'v':1,'station':'a\\xb'}", -EBADMSG, "", "invalid JSON at byte 19"},
	{K_TEL, "{'v':1,'station':'\\ud800'}", -EBADMSG, "", "invalid JSON"},
	{K_TEL, TEL(R_OK) " x", -EBADMSG, "", "trailing data at byte"},
	{K_TEL, TEL(R_OK) "}", -EBADMSG, "", "trailing data"},
	{K_TEL, "{}{}", -EBADMSG, "", "trailing data at byte 2"},
	{K_TEL, "[]", -EBADMSG, "", "expected an object"},
	{K_TEL, "null", -EBADMSG, "", "expected an object"},
	{K_TEL, "'DT-W01'", -EBADMSG, "", "expected an object"},
	{K_TEL, TEL(RD("NaN", "ok")), -EBADMSG, "", "invalid JSON"},
	{K_TEL, TEL(RD("Infinity", "ok")), -EBADMSG, "", "invalid JSON"},
	{K_TEL, TEL(RD("-Infinity", "ok")), -EBADMSG, "", "invalid number"},
	{K_TEL, TEL(RD("01", "ok")), -EBADMSG, "", "invalid number"},
	{K_TEL, TEL(RD(".5", "ok")), -EBADMSG, "", "invalid number"},
	{K_TEL, TEL(RD("+1", "ok")), -EBADMSG, "", "invalid number"},
	{K_TEL, TEL(RD("1.", "ok")), -EBADMSG, "", "invalid number"},
	{K_TEL, TEL(RD("1e", "ok")), -EBADMSG, "", "invalid number"},
	{K_TEL, TEL(RD("0x10", "ok")), -EBADMSG, "", "invalid JSON"},
	{K_TEL, "{'v':1,'station':'sonde\x01'}", -EBADMSG, "", "control character in a string at byte 23"},
	{K_TEL, "{'v':1,'station':'\xff'}", -EBADMSG, "", "invalid UTF-8 at byte 18"},
	{K_TEL, "{'v':1,'station':'\xed\xa0\x80'}", -EBADMSG, "", "invalid UTF-8"},  /* surrogate */
	{K_TEL, "{'v':1,'station':'\xc0\xaf'}", -EBADMSG, "", "invalid UTF-8"},      /* overlong */
	{K_TEL, "{'v':1,'station':'a\\u0000b'}", -EBADMSG, "", "\\u0000 in a string"},
	{K_TEL, "{\x01}", -EBADMSG, "", "invalid JSON at byte 1"},
	/* envelope */
	{K_TEL, "{'station':'DT-W01','seq':7,'sent_at':'2026-11-22T15:04:05.123Z','readings':[" R_OK "]}",
	 -EBADMSG, "v", "is required"},
	{K_TEL, "{'v':2,'station':'DT-W01','seq':7}", -EBADMSG, "v", "unsupported version 2 (expected 1)"},
	{K_TEL, "{'v':'1','station':'DT-W01'}", -EBADMSG, "v", "expected an integer"},
	{K_TEL, "{'v':1.5,'station':'DT-W01'}", -EBADMSG, "v", "expected an integer"},
	{K_TEL, "{'v':1,'seq':7,'sent_at':'2026-11-22T15:04:05.123Z','readings':[" R_OK "]}",
	 -EBADMSG, "station", "is required"},
	{K_TEL, "{'v':1,'station':'alerts'}", -EBADMSG, "station", "reserved word"},
	{K_TEL, "{'v':1,'station':'DT W01'}", -EBADMSG, "station", "invalid id (expected [A-Za-z0-9_-]{1,32})"},
	{K_TEL, "{'v':1,'station':''}", -EBADMSG, "station", "invalid id"},
	{K_TEL, "{'v':1,'station':'abcdefghijklmnopqrstuvwxyz0123456'}", -EBADMSG, "station", "invalid id"},
	{K_TEL, "{'v':1,'station':42}", -EBADMSG, "station", "expected a string"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':-1}", -EBADMSG, "seq", "must be between 0 and 9007199254740991"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':9007199254740992}", -EBADMSG, "seq", "must be between 0 and"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':1e300}", -EBADMSG, "seq", "must be between"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':1e999}", -EBADMSG, "seq", "number too large"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':7.5}", -EBADMSG, "seq", "expected an integer"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':'7'}", -EBADMSG, "seq", "expected an integer"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':null}", -EBADMSG, "seq", "expected an integer"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':7,'sent_at':'2026-11-22 15:04:05Z'}", -EBADMSG,
	 "sent_at", "invalid RFC 3339 timestamp"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':7,'sent_at':'2027-02-29T00:00:00.000Z'}", -EBADMSG,
	 "sent_at", "invalid RFC 3339 timestamp"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':7,'sent_at':1795359845123}", -EBADMSG,
	 "sent_at", "expected a string"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':7,'sent_at':'2026-11-22T15:04:05.123Z'}", -EBADMSG,
	 "readings", "is required"},
	{K_TEL, ENV "]}", -EBADMSG, "readings", "must hold 1 to 1000 readings"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':7,'sent_at':'2026-11-22T15:04:05.123Z','readings':{}}",
	 -EBADMSG, "readings", "expected an array"},
	{K_TEL, "{'v':1,'station':'DT-W01','seq':7,'seq':8}", -EBADMSG, "seq", "duplicate key"},
	{K_TEL, "{'v':1,'station':'DT-W01','station':'DT-W02'}", -EBADMSG, "station", "duplicate key"},
	{K_TEL, "{'v':1,'station':'DT-W01','extra':true}", -EBADMSG, "extra", "unknown key"},
	{K_TEL, "{'v':1,'Station':'DT-W01'}", -EBADMSG, "Station", "unknown key"},
	{K_TEL, "{'v':1,'a\\nb':1}", -EBADMSG, "a?b", "unknown key"}, /* one line */
	/* readings: the envelope is fine, the reading is skipped (ret 1) */
	{K_TEL, TEL(RD("1e999", "ok")), 1, "readings[0].value", "number too large"},
	{K_TEL, TEL(RD("-1e400", "ok")), 1, "readings[0].value", "number too large"},
	{K_TEL, TEL(RD("'3.42'", "ok")), 1, "readings[0].value", "expected a number"},
	{K_TEL, TEL(RD("true", "ok")), 1, "readings[0].value", "expected a number"},
	{K_TEL, TEL(RD("[1]", "ok")), 1, "readings[0].value", "expected a number"},
	{K_TEL, TEL(RD("null", "ok")), 1, "readings[0].value", "null is only allowed when q is \"error\""},
	{K_TEL, TEL(RD("null", "suspect")), 1, "readings[0].value", "null is only allowed"},
	{K_TEL, TEL(RD("0", "error")), 1, "readings[0].value", "must be null when q is \"error\""},
	{K_TEL, TEL(R_OK "," RD("1", "good")), 1, "readings[1].q",
	 "expected \"ok\", \"suspect\", \"error\" or \"maint\""},
	{K_TEL, TEL(R_OK "," R_OK "," RD("1", "OK")), 1, "readings[2].q", "expected \"ok\""},
	{K_TEL, TEL("{'ts':" TS ",'sensor':'sonde1','metric':'salinity','value':1,'unit':'abcdefghijklmnop','q':'ok'}"),
	 1, "readings[0].unit", "too long (max 15 bytes)"},
	{K_TEL, TEL("{'ts':" TS ",'sensor':'sonde1','metric':'salinity','value':1,'unit':null,'q':'ok'}"),
	 1, "readings[0].unit", "expected a string"},
	{K_TEL, TEL("{'ts':" TS ",'sensor':'sonde 1','metric':'salinity','value':1,'unit':'','q':'ok'}"),
	 1, "readings[0].sensor", "invalid id"},
	{K_TEL, TEL("{'ts':" TS ",'sensor':'sonde1','metric':'abcdefghijklmnopqrstuvwxyz0123456','value':1,'unit':'','q':'ok'}"),
	 1, "readings[0].metric", "invalid id"},
	{K_TEL, TEL("{'ts':'2027-02-29T00:00:00.000Z','sensor':'s','metric':'m','value':1,'unit':'','q':'ok'}"),
	 1, "readings[0].ts", "invalid RFC 3339 timestamp"},
	{K_TEL, TEL("{'ts':'1969-12-31T23:59:59.999Z','sensor':'s','metric':'m','value':1,'unit':'','q':'ok'}"),
	 1, "readings[0].ts", "invalid RFC 3339 timestamp"},
	{K_TEL, TEL("{'sensor':'s','metric':'m','value':1,'unit':'','q':'ok'}"), 1, "readings[0].ts", "is required"},
	{K_TEL, TEL("{'ts':" TS ",'sensor':'s','metric':'m','unit':'','q':'ok'}"), 1, "readings[0].value", "is required"},
	{K_TEL, TEL("{'ts':" TS ",'sensor':'s','metric':'m','value':1,'unit':'','q':'ok','raw':17}"),
	 1, "readings[0].raw", "unknown key"},
	{K_TEL, TEL("{'ts':" TS ",'sensor':'s','metric':'m','value':1,'value':2,'unit':'','q':'ok'}"),
	 1, "readings[0].value", "duplicate key"},
	{K_TEL, TEL(R_OK ",42"), 1, "readings[1]", "expected an object"},
	{K_TEL, TEL("[]"), 1, "readings[0]", "expected an object"},
	/* status */
	{K_STATUS, "{'v':1,'station':'DT-W01'}", -EBADMSG, "state", "is required"},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'sleeping'}", -EBADMSG, "state",
	 "expected \"online\" or \"offline\""},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','maintenance':'yes'}", -EBADMSG,
	 "maintenance", "expected true or false"},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','fw':'0123456789012345678901234567890123'}",
	 -EBADMSG, "fw", "too long (max 32 bytes)"},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','ts':'yesterday'}", -EBADMSG, "ts",
	 "invalid RFC 3339"},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','sensors':[{'name':'s1'},{'name':'s2','reads_ok':-3}]}",
	 -EBADMSG, "sensors[1].reads_ok", "must be between 0 and"},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','sensors':[{'profile':'x'}]}",
	 -EBADMSG, "sensors[0].name", "is required"},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','sensors':[{'name':'s','profile':'a/b'}]}",
	 -EBADMSG, "sensors[0].profile", "invalid id"},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','sensors':{}}", -EBADMSG, "sensors",
	 "expected an array"},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','buses':[{'name':'a','state':'up'}]}",
	 -EBADMSG, "buses[0].state", "expected \"open\" or \"down\""},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','buses':[{'state':'open'}]}",
	 -EBADMSG, "buses[0].name", "is required"},
	{K_STATUS, "{'v':1,'station':'DT-W01','state':'online','state':'offline'}", -EBADMSG, "state",
	 "duplicate key"},
	{K_STATUS, "{'v':0,'station':'DT-W01','state':'online'}", -EBADMSG, "v", "unsupported version 0"},
	/* ack */
	{K_ACK, "{'v':1,'station':'DT-W01','seqs':[[5,3]]}", -EBADMSG, "seqs[0]", "first is greater than last"},
	{K_ACK, "{'v':1,'station':'DT-W01','seqs':[[1,2],[1]]}", -EBADMSG, "seqs[1]", "expected [first, last]"},
	{K_ACK, "{'v':1,'station':'DT-W01','seqs':[7]}", -EBADMSG, "seqs[0]", "expected [first, last]"},
	{K_ACK, "{'v':1,'station':'DT-W01','seqs':[[1,'2']]}", -EBADMSG, "seqs[0][1]", "expected an integer"},
	{K_ACK, "{'v':1,'station':'DT-W01','seqs':[[-1,2]]}", -EBADMSG, "seqs[0][0]", "must be between 0 and"},
	{K_ACK, "{'v':1,'station':'DT-W01','seqs':[]}", -EBADMSG, "seqs", "must hold 1 to 256 ranges"},
	{K_ACK, "{'v':1,'station':'DT-W01','seqs':[[1,2]],'n':1}", -EBADMSG, "n", "unknown key"},
	/* config ack */
	{K_CACK, "{'v':1,'station':'DT-W01','version':4,'result':'ok'}", -EBADMSG, "result",
	 "expected \"applied\" or \"rejected\""},
	{K_CACK, "{'v':1,'station':'DT-W01','version':-1,'result':'applied'}", -EBADMSG, "version",
	 "must be between 0 and"},
	{K_CACK, "{'v':1,'station':'DT-W01','result':'applied'}", -EBADMSG, "version", "is required"},
	{K_CACK, "{'v':1,'station':'DT-W01','version':4,'result':'rejected','error':7}", -EBADMSG,
	 "error", "expected a string"},
	{K_CACK, "{'v':1,'station':'DT-W01','version':4,'result':'applied','signed_by':'a/b'}", -EBADMSG,
	 "signed_by", "invalid id"},
	/* alerts */
	{K_ALERT, ALERT_HEAD ",'severity':'critical','state':'active','raised_at':'2026-11-22T15:04:05Z',"
		  "'updated_at':'2026-11-22T15:04:05Z','message':'x','sensor':'s2'}", -EBADMSG, "sensor", "duplicate key"},
	{K_ALERT, "{'v':1,'id':'salinity-critical/DT-W02/sonde1','rule':'salinity-critical','station':'DT-W01',"
		  "'sensor':'sonde1','severity':'critical','state':'active','raised_at':'2026-11-22T15:04:05Z',"
		  "'updated_at':'2026-11-22T15:04:05Z','message':'x'}", -EBADMSG, "id",
	 "must be \"<rule>/<station>[/<sensor>]\""},
	{K_ALERT, ALERT_HEAD ",'severity':'high'}", -EBADMSG, "severity", "expected \"info\", \"warning\""},
	{K_ALERT, ALERT_HEAD ",'severity':'info','state':'open'}", -EBADMSG, "state",
	 "expected \"active\", \"acknowledged\" or \"cleared\""},
	{K_ALERT, ALERT_HEAD ",'severity':'info','state':'active','value':'4.3'}", -EBADMSG, "value",
	 "expected a number"},
	{K_ALERT, ALERT_HEAD ",'severity':'info','state':'active','raised_at':'2026-11-22T15:04:05Z',"
		  "'updated_at':'2026-11-22T15:04:05Z'}", -EBADMSG, "message", "is required"},
	{K_ALERT, "{'v':1,'id':'a/b/S1','rule':'a/b'}", -EBADMSG, "rule", "invalid rule id"},
	/* config envelope */
	{K_CVER, "{'station':'DT-W01'}", -EBADMSG, "version", "is required"},
	{K_CVER, "{'version':0}", -EBADMSG, "version", "must be between 1 and 9007199254740991"},
	{K_CVER, "{'version':1.5}", -EBADMSG, "version", "expected an integer"},
	{K_CVER, "{'version':'3'}", -EBADMSG, "version", "expected an integer"},
	{K_CVER, "{'version':3,'version':4}", -EBADMSG, "version", "duplicate key"},
	{K_CVER, "[{'version':3}]", -EBADMSG, "", "expected an object"},
};

static void test_bad(void)
{
	size_t n = AGRI_ARRAY_SIZE(bad);

	CHECK(n >= 40);
	for (size_t i = 0; i < n; i++) {
		const char *json = jq(bad[i].json);
		struct agri_err err = {"unset", "unset"};
		int ret = decode(bad[i].k, json, strlen(json), &err);

		CHECK_INT(ret, bad[i].ret);
		CHECK_STR(err.path, bad[i].path);
		CHECK(strstr(err.msg, bad[i].msg) != NULL);
		if (ret != bad[i].ret || strcmp(err.path, bad[i].path) || !strstr(err.msg, bad[i].msg))
			fprintf(stderr, "  bad[%zu] %s -> %d %s: %s\n", i, json, ret, err.path, err.msg);
		if (bad[i].ret == 1) {
			CHECK_INT(tel.n + tel.n_invalid, tel.n + 1);
			CHECK(tel.has_station && tel.has_seq);
		}
	}
}

/* Generated documents: sizes, counts and depths past the limits. */
static void test_limits(void)
{
	static char big[AGRI_BATCH_MAX_BYTES + 4096];
	const char *one = jq("," R_OK);
	struct agri_err err;
	size_t pos, i;

	/* 1,000 readings are fine, 1,001 are not. */
	pos = (size_t)sprintf(big, "%s", jq(ENV R_OK));
	for (i = 1; i < 1000; i++)
		pos += (size_t)sprintf(big + pos, "%s", one);
	strcpy(big + pos, "]}");
	CHECK_INT(agri_telemetry_decode(big, strlen(big), &tel, &err), 0);
	CHECK_INT(tel.n, 1000);
	tel.cap = 999;
	CHECK_INT(agri_telemetry_decode(big, strlen(big), &tel, &err), -ENOSPC);
	tel.cap = AGRI_BATCH_MAX_READINGS;
	pos += (size_t)sprintf(big + pos, "%s", one);
	strcpy(big + pos, "]}");
	CHECK_INT(agri_telemetry_decode(big, strlen(big), &tel, &err), -EBADMSG);
	CHECK_STR(err.path, "readings");
	CHECK(strstr(err.msg, "must hold 1 to 1000 readings") != NULL);
	CHECK(tel.has_station && tel.has_seq); /* still ackable */

	/* Over 256 KiB (whitespace padding): -E2BIG before parsing. */
	pos = (size_t)sprintf(big, "%s", jq(TEL(R_OK)));
	memset(big + pos, ' ', AGRI_BATCH_MAX_BYTES + 1 - pos);
	CHECK_INT(agri_telemetry_decode(big, AGRI_BATCH_MAX_BYTES, &tel, &err), 0);
	CHECK_INT(agri_telemetry_decode(big, AGRI_BATCH_MAX_BYTES + 1, &tel, &err), -E2BIG);
	CHECK_STR(err.path, "");
	CHECK(strstr(err.msg, "larger than 262144 bytes") != NULL);
	CHECK(!tel.has_station);
	CHECK_INT(agri_status_decode(big, 65537, &status, &err), -E2BIG);

	/* Depth: 16 levels pass the pre-scan (the unknown key then fails),
	 * 17 and 100,000 are refused before cJSON recurses. */
	for (int depth = 15; depth <= 16; depth++) {
		pos = (size_t)sprintf(big, "{\"v\":1,\"x\":");
		for (int d = 1; d < depth; d++)
			big[pos++] = '[';
		for (int d = 1; d < depth; d++)
			big[pos++] = ']';
		strcpy(big + pos, "}");
		CHECK_INT(agri_telemetry_decode(big, strlen(big), &tel, &err), -EBADMSG);
		CHECK_STR(err.path, "x");
	}
	for (size_t depth = 17; depth <= 100000; depth *= 77) {
		pos = (size_t)sprintf(big, "{\"v\":1,\"x\":");
		for (size_t d = 1; d < depth; d++)
			big[pos++] = d & 1 ? '[' : '{';
		big[pos] = '\0';
		CHECK_INT(agri_status_decode(big, strlen(big), &status, &err), -EBADMSG);
		CHECK_STR(err.path, "");
		CHECK(strstr(err.msg, "nested deeper than 16 levels") != NULL);
	}

	/* A NUL byte inside the length. */
	memcpy(big, jq(TEL(R_OK)), strlen(TEL(R_OK)) + 1);
	big[20] = '\0';
	CHECK_INT(agri_telemetry_decode(big, strlen(TEL(R_OK)), &tel, &err), -EBADMSG);
	CHECK(strstr(err.msg, "NUL byte at byte 20") != NULL);

	/* 33 sensors in a status. */
	pos = (size_t)sprintf(big, "{\"v\":1,\"station\":\"S\",\"state\":\"online\",\"sensors\":[");
	for (i = 0; i < 33; i++)
		pos += (size_t)sprintf(big + pos, "%s{\"name\":\"s%zu\"}", i ? "," : "", i);
	strcpy(big + pos, "]}");
	CHECK_INT(agri_status_decode(big, strlen(big), &status, &err), -EBADMSG);
	CHECK_STR(err.path, "sensors");
	CHECK(strstr(err.msg, "must hold 0 to 32 sensors") != NULL);

	/* A config ack error of 256 bytes. */
	pos = (size_t)sprintf(big, "{\"v\":1,\"station\":\"S\",\"version\":1,\"result\":\"rejected\",\"error\":\"");
	memset(big + pos, 'e', 256);
	strcpy(big + pos + 256, "\"}");
	CHECK_INT(agri_config_ack_decode(big, strlen(big), &cack, &err), -EBADMSG);
	CHECK_STR(err.path, "error");
	CHECK(strstr(err.msg, "too long (max 255 bytes)") != NULL);

	/* A config document of 64 KiB + 1. */
	CHECK_INT(agri_config_version(big, 65537, &cver, &err), -E2BIG);
}

/* A batch with bad readings keeps the good ones; the error names the
 * first bad one; an envelope failure still reports station and seq. */
static void test_partial(void)
{
	const char *json = jq(ENV R_OK "," RD("null", "ok") "," RD("1", "ok") "," RD("2", "bad") ","
			       RD("null", "error") "]}");
	struct agri_err err;

	CHECK_INT(agri_telemetry_decode(json, strlen(json), &tel, &err), 1);
	CHECK_INT(tel.n, 3);
	CHECK_INT(tel.n_invalid, 2);
	CHECK_STR(err.path, "readings[1].value");
	CHECK_NEAR(readings[1].value, 1, 0);
	CHECK(!readings[2].has_value);
	CHECK_STR(tel.station, "DT-W01");
	CHECK_INT(tel.seq, 7);

	static const struct {
		const char *json;
		bool has_station, has_seq;
		const char *station;
		uint64_t seq;
	} env[] = {
		{"{'v':2,'station':'DT-W01','seq':7}", true, true, "DT-W01", 7},
		{"{'v':1,'station':'DT-W01','seq':7,'sent_at':'x'}", true, true, "DT-W01", 7},
		{"{'v':1,'station':'DT-W01','seq':-7,'readings':[]}", true, false, "DT-W01", 0},
		{"{'v':1,'station':'DT W01','seq':7}", false, true, "", 7},
		{"{'v':1,'station':'DT-W01','station':'DT-W01','seq':7}", false, true, "", 7},
		{"{'seq':7.5,'v':1,'station':'alerts'}", false, false, "", 0},
		{"{'v':1,'station':'DT-W01','seq':7,", false, false, "", 0},
	};
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(env); i++) {
		json = jq(env[i].json);
		CHECK_INT(agri_telemetry_decode(json, strlen(json), &tel, &err), -EBADMSG);
		CHECK_INT(tel.has_station, env[i].has_station);
		CHECK_INT(tel.has_seq, env[i].has_seq);
		CHECK_STR(tel.station, env[i].station);
		if (env[i].has_seq)
			CHECK_INT(tel.seq, env[i].seq);
		CHECK_INT(tel.n, 0);
	}
}

/* The gateway's check: the payload's station must be the topic's. */
static void test_topic_mismatch(void)
{
	static const struct {
		const char *topic, *json;
		bool accept;
	} cases[] = {
		{"agri/v1/DT-W01/telemetry", TEL(R_OK), true},
		{"agri/v1/DT-W02/telemetry", TEL(R_OK), false},
		{"agri/v1/dt-w01/telemetry", TEL(R_OK), false},
		{"agri/v1/DT-W01/status", "{'v':1,'station':'DT-W01','state':'offline'}", true},
		{"agri/v1/DT-W03/status", "{'v':1,'station':'DT-W01','state':'offline'}", false},
	};
	struct agri_topic t;
	struct agri_err err;

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
		const char *json = jq(cases[i].json);
		const char *station;

		CHECK_INT(agri_topic_parse(cases[i].topic, AGRI_TOPIC_PREFIX_DEFAULT, &t), 0);
		if (t.kind == AGRI_TOPIC_TELEMETRY) {
			CHECK_INT(agri_telemetry_decode(json, strlen(json), &tel, &err), 0);
			station = tel.station;
		} else {
			CHECK_INT(agri_status_decode(json, strlen(json), &status, &err), 0);
			station = status.station;
		}
		CHECK_INT(strcmp(station, t.station) == 0, cases[i].accept);
	}
}

static void test_encode_refuses(void)
{
	struct agri_reading r = {.ts_ms = 0, .sensor = "s", .metric = "m", .unit = "g/L",
				 .value = 1, .has_value = true, .q = AGRI_Q_OK};
	struct agri_telemetry t = {.station = "S", .seq = 1, .readings = &r, .n = 1};
	char buf[1024];

	CHECK(agri_telemetry_encode(&t, buf, sizeof(buf)) > 0);
	t.seq = 9007199254740992ULL;
	CHECK_INT(agri_telemetry_encode(&t, buf, sizeof(buf)), -EINVAL);
	t.seq = 1;
	r.value = NAN;
	CHECK_INT(agri_telemetry_encode(&t, buf, sizeof(buf)), -EINVAL);
	r.value = INFINITY;
	CHECK_INT(agri_telemetry_encode(&t, buf, sizeof(buf)), -EINVAL);
	r.value = 1;
	r.q = AGRI_Q_ERROR;
	CHECK_INT(agri_telemetry_encode(&t, buf, sizeof(buf)), -EINVAL);
	r.has_value = false;
	CHECK(agri_telemetry_encode(&t, buf, sizeof(buf)) > 0);
	r.q = (enum agri_quality)9;
	CHECK_INT(agri_telemetry_encode(&t, buf, sizeof(buf)), -EINVAL);
	r.q = AGRI_Q_ERROR;
	strcpy(r.sensor, "a b");
	CHECK_INT(agri_telemetry_encode(&t, buf, sizeof(buf)), -EINVAL);
	strcpy(r.sensor, "s");
	strcpy(r.unit, "\xff");
	CHECK_INT(agri_telemetry_encode(&t, buf, sizeof(buf)), -EINVAL);
	strcpy(r.unit, "g/L");
	r.ts_ms = -1;
	CHECK_INT(agri_telemetry_encode(&t, buf, sizeof(buf)), -EINVAL);
	r.ts_ms = 0;
	t.n = 0;
	CHECK_INT(agri_telemetry_encode(&t, buf, sizeof(buf)), -EINVAL);
	t.n = 1;
	strcpy(t.station, "alerts");
	CHECK_INT(agri_telemetry_encode(&t, buf, sizeof(buf)), -EINVAL);
	strcpy(t.station, "S");
	CHECK_INT(agri_telemetry_encode(&t, buf, 10), -ENOSPC);
	CHECK_INT(agri_telemetry_encode(&t, NULL, 0), -ENOSPC);

	struct agri_alert a = {.id = "r/S/x", .rule = "r", .station = "S", .sensor = "s",
			       .severity = "info", .message = "m"};
	CHECK_INT(agri_alert_encode(&a, buf, sizeof(buf)), -EINVAL); /* id mismatch */
	strcpy(a.id, "r/S/s");
	CHECK(agri_alert_encode(&a, buf, sizeof(buf)) > 0);
	strcpy(a.severity, "high");
	CHECK_INT(agri_alert_encode(&a, buf, sizeof(buf)), -EINVAL);

	struct agri_ack k = {.station = "S", .n = 1, .ranges = {{5, 3}}};
	CHECK_INT(agri_ack_encode(&k, buf, sizeof(buf)), -EINVAL);
	k.n = 0;
	CHECK_INT(agri_ack_encode(&k, buf, sizeof(buf)), -EINVAL);

	struct agri_status s = {.station = "S", .n_sensors = 1};
	CHECK_INT(agri_status_encode(&s, buf, sizeof(buf)), -EINVAL); /* sensor without name */
	s.n_sensors = 0;
	s.uptime_s = 1ULL << 60;
	CHECK_INT(agri_status_encode(&s, buf, sizeof(buf)), -EINVAL);
}

static void test_ack_add(void)
{
	static const struct {
		uint64_t seq;
		const char *after;
	} steps[] = {
		{10, "[[10,10]]"},
		{10, "[[10,10]]"},
		{11, "[[10,11]]"},
		{9, "[[9,11]]"},
		{20, "[[9,11],[20,20]]"},
		{5, "[[5,5],[9,11],[20,20]]"},
		{13, "[[5,5],[9,11],[13,13],[20,20]]"},
		{12, "[[5,5],[9,13],[20,20]]"},
		{7, "[[5,5],[7,7],[9,13],[20,20]]"},
		{6, "[[5,7],[9,13],[20,20]]"},
		{8, "[[5,13],[20,20]]"},
		{0, "[[0,0],[5,13],[20,20]]"},
		{19, "[[0,0],[5,13],[19,20]]"},
		{21, "[[0,0],[5,13],[19,21]]"},
	};
	struct agri_ack a = {.station = "S"};
	char buf[256], want[256];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(steps); i++) {
		CHECK_INT(agri_ack_add(&a, steps[i].seq), 0);
		snprintf(want, sizeof(want), "{\"v\":1,\"station\":\"S\",\"seqs\":%s}", steps[i].after);
		CHECK(agri_ack_encode(&a, buf, sizeof(buf)) > 0);
		CHECK_STR(buf, want);
	}
	memset(&a, 0, sizeof(a));
	for (uint64_t s = 0; s < 2 * AGRI_ACK_RANGES_MAX; s += 2)
		CHECK_INT(agri_ack_add(&a, s), 0);
	CHECK_INT(a.n, AGRI_ACK_RANGES_MAX);
	CHECK_INT(agri_ack_add(&a, 1000), -ENOSPC);
	CHECK_INT(agri_ack_add(&a, 1), 0); /* merges [0,0] [1] [2,2] */
	CHECK_INT(a.n, AGRI_ACK_RANGES_MAX - 1);
	CHECK_INT(agri_ack_add(&a, 9007199254740992ULL), -EINVAL);
}

static void test_json_helpers(void)
{
	static const struct {
		double d;
		const char *s;
	} nums[] = {
		{0, "0"}, {-0.0, "-0"}, {1, "1"}, {3.42, "3.42"}, {0.1, "0.1"},
		{0.1 + 0.2, "0.30000000000000004"}, {1e21, "1e+21"}, {1e-7, "1e-07"},
		{123456789012345678.0, "1.2345678901234568e+17"}, {-2.5, "-2.5"},
		{9007199254740991.0, "9007199254740991"},
	};
	char buf[64];
	size_t pos;

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(nums); i++) {
		pos = 0;
		CHECK_INT(agri_json_put_num(buf, sizeof(buf), &pos, nums[i].d), 0);
		CHECK_STR(buf, nums[i].s);
	}
	pos = 0;
	CHECK_INT(agri_json_put_num(buf, sizeof(buf), &pos, NAN), -EINVAL);
	CHECK_INT(agri_json_put_num(buf, sizeof(buf), &pos, -INFINITY), -EINVAL);
	CHECK_INT(agri_json_put_num(buf, 2, &pos, 12), -ENOSPC);

	pos = 0;
	CHECK_INT(agri_json_put_str(buf, sizeof(buf), &pos, "a\"b\\c\n\x1f/\xc3\xa9"), 0);
	CHECK_STR(buf, "\"a\\\"b\\\\c\\n\\u001f/\xc3\xa9\"");
	CHECK_INT(pos, strlen(buf));
	pos = 2;
	CHECK_INT(agri_json_put_str(buf, 8, &pos, "abcdefgh"), -ENOSPC);
	CHECK_INT(pos, 2); /* unchanged on failure */
	CHECK_INT(agri_json_put_str(buf, sizeof(buf), &pos, "\xc3"), -EINVAL);

	struct agri_err err;
	agri_err_set(&err, "readings[3].value", "expected a %s", "number");
	CHECK_INT(agri_err_format(&err, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "readings[3].value: expected a number");
	agri_err_set(&err, "", "bad");
	CHECK_INT(agri_err_format(&err, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "bad");
	CHECK_INT(agri_err_format(&err, buf, 3), -ENOSPC);
	agri_err_set(NULL, "", "ignored");

	agri_path_key(buf, sizeof(buf), "", "a");
	CHECK_STR(buf, "a");
	agri_path_key(buf, sizeof(buf), "a", "b");
	CHECK_STR(buf, "a.b");
	agri_path_index(buf, sizeof(buf), "a.b", 3);
	CHECK_STR(buf, "a.b[3]");

	CHECK_STR(agri_quality_name(AGRI_Q_MAINT), "maint");
	CHECK(agri_quality_name((enum agri_quality)4) == NULL);
	enum agri_quality q;
	CHECK_INT(agri_quality_parse("suspect", &q), 0);
	CHECK_INT(q, AGRI_Q_SUSPECT);
	CHECK_INT(agri_quality_parse("Suspect", &q), -EINVAL);
	enum agri_alert_state st;
	CHECK_INT(agri_alert_state_parse("acknowledged", &st), 0);
	CHECK_INT(st, AGRI_ALERT_ACKNOWLEDGED);
	CHECK_STR(agri_alert_state_name(AGRI_ALERT_CLEARED), "cleared");
}

/* agri_cfg_read, as the config parsers use it. */
struct cfg {
	char name[8];
	int64_t port;
	int64_t count;
	double ratio;
	bool on, has_ratio;
};

static void test_cfg_read(void)
{
	static const struct agri_cfg_field fields[] = {
		{.key = "name", .type = AGRI_CFG_STR, .required = true,
		 .offset = offsetof(struct cfg, name), .size = sizeof(((struct cfg *)0)->name)},
		{.key = "port", .type = AGRI_CFG_INT, .offset = offsetof(struct cfg, port),
		 .min = 1, .max = 65535},
		{.key = "count", .type = AGRI_CFG_UINT, .offset = offsetof(struct cfg, count)},
		{.key = "ratio", .type = AGRI_CFG_DOUBLE, .offset = offsetof(struct cfg, ratio),
		 .min = 0, .max = 1, .present_offset = offsetof(struct cfg, has_ratio)},
		{.key = "on", .type = AGRI_CFG_BOOL, .offset = offsetof(struct cfg, on)},
	};
	static const struct {
		const char *json;
		int ret;
		const char *path, *msg;
	} cases[] = {
		{"{'name':'x'}", 0, NULL, NULL},
		{"{'name':'x','port':1,'count':0,'ratio':0.5,'on':true}", 0, NULL, NULL},
		{"{'port':1}", -EINVAL, "broker.name", "is required"},
		{"{'name':'12345678'}", -EINVAL, "broker.name", "too long (max 7 bytes)"},
		{"{'name':null}", -EINVAL, "broker.name", "expected a string"},
		{"{'name':'x','port':0}", -EINVAL, "broker.port", "must be between 1 and 65535"},
		{"{'name':'x','port':80.5}", -EINVAL, "broker.port", "expected an integer"},
		{"{'name':'x','count':-1}", -EINVAL, "broker.count", "must be between 0 and"},
		{"{'name':'x','ratio':1.5}", -EINVAL, "broker.ratio", "must be between 0 and 1"},
		{"{'name':'x','ratio':'1'}", -EINVAL, "broker.ratio", "expected a number"},
		{"{'name':'x','on':1}", -EINVAL, "broker.on", "expected true or false"},
		{"{'name':'x','url':1}", -EINVAL, "broker.url", "unknown key"},
		{"{'name':'x','on':true,'on':false}", -EINVAL, "broker.on", "duplicate key"},
		{"[]", -EINVAL, "broker", "expected an object"},
	};

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
		const char *json = jq(cases[i].json);
		struct cfg c = {.port = 1883};
		struct agri_err err;
		cJSON *root;

		CHECK_INT(agri_json_parse(json, strlen(json), 4096, 8, &root, &err), 0);
		CHECK_INT(agri_cfg_read(root, "broker", fields, 5, &c, false, &err), cases[i].ret);
		if (cases[i].ret) {
			CHECK_STR(err.path, cases[i].path);
			CHECK(strstr(err.msg, cases[i].msg) != NULL);
		}
		if (i == 0) {
			CHECK_INT(c.port, 1883); /* the default stays */
			CHECK(!c.has_ratio);
		}
		if (i == 1)
			CHECK(c.has_ratio && c.on && c.ratio == 0.5);
		cJSON_Delete(root);
	}
}

/* agri_cfg_read_array and the AGRI_FIELD_* rows: objects with defaults and
 * a check, plain values, the count's wording, a table row of the wrong
 * member size. */
struct item {
	char name[8];
	int64_t n;
	bool flag;
};

struct doc {
	size_t n_items;
	struct item items[3];
	size_t n_tags;
	char tags[2][4];
	int32_t small; /* wrong for an INT row */
};

static void item_defaults(void *elem)
{
	struct item *it = elem;

	memset(it, 0, sizeof(*it));
	it->n = 7;
}

static int item_check(const cJSON *obj, void *elem, const char *path, struct agri_err *err)
{
	const struct item *it = elem;

	(void)obj;
	if (it->flag && it->n == 7) {
		agri_err_set(err, path, "flag needs n");
		return -EINVAL;
	}
	return 0;
}

static void test_cfg_read_array(void)
{
	static const struct agri_cfg_field item_fields[] = {
		AGRI_FIELD_STR(struct item, "name", name, true),
		AGRI_FIELD_INT(struct item, "n", n, 0, 100),
		AGRI_FIELD_BOOL(struct item, "flag", flag),
	};
	static const struct agri_cfg_array items = {
		.fields = item_fields, .n_fields = AGRI_ARRAY_SIZE(item_fields),
		.elem_size = sizeof(struct item), .min = 1, .max = 3, .what = "items",
		.init = item_defaults, .check = item_check,
	};
	static const struct agri_cfg_field tag = {.type = AGRI_CFG_STR, .size = 4};
	static const struct agri_cfg_array tags = {
		.value = &tag, .elem_size = 4, .max = 2, .what = "tags",
	};
	static const struct agri_cfg_field fields[] = {
		AGRI_FIELD_ARRAY(struct doc, "items", items, n_items, &items, true),
		AGRI_FIELD_ARRAY(struct doc, "tags", tags, n_tags, &tags, false),
		AGRI_FIELD_INT(struct doc, "small", small, 0, 10),
	};
	static const struct {
		const char *json;
		int ret;
		const char *path, *msg;
	} cases[] = {
		{"{'items':[{'name':'a'},{'name':'b','n':3,'flag':true}],'tags':['x','yz']}", 0,
		 NULL, NULL},
		{"{'items':[]}", -EINVAL, "items", "expected an array of 1 to 3 items"},
		{"{'items':{}}", -EINVAL, "items", "expected an array of 1 to 3 items"},
		{"{'items':[{'name':'a'}],'tags':['a','b','c']}", -EINVAL, "tags",
		 "expected an array of at most 2 tags"},
		{"{'items':[{'name':'a'},{'n':1}]}", -EINVAL, "items[1].name", "is required"},
		{"{'items':[{'name':'a','flag':true}]}", -EINVAL, "items[0]", "flag needs n"},
		{"{'items':[{'name':'a'}],'tags':['long']}", -EINVAL, "tags[0]", "too long"},
		{"{'items':[{'name':'a'}],'small':1}", -EINVAL, "small", "table row"},
	};

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
		const char *json = jq(cases[i].json);
		struct doc d = {.n_items = 99};
		struct agri_err err;
		cJSON *root;

		CHECK_INT(agri_json_parse(json, strlen(json), 4096, 8, &root, &err), 0);
		CHECK_INT(agri_cfg_read(root, "", fields, AGRI_ARRAY_SIZE(fields), &d, false, &err),
			  cases[i].ret);
		if (cases[i].ret) {
			CHECK_STR(err.path, cases[i].path);
			CHECK(strstr(err.msg, cases[i].msg) != NULL);
		} else {
			CHECK_INT(d.n_items, 2);
			CHECK_STR(d.items[0].name, "a");
			CHECK_INT(d.items[0].n, 7); /* init's default */
			CHECK_INT(d.items[1].n, 3);
			CHECK(d.items[1].flag);
			CHECK_INT(d.n_tags, 2);
			CHECK_STR(d.tags[1], "yz");
		}
		cJSON_Delete(root);
	}
	/* The wording's other forms. */
	{
		static const struct agri_cfg_array one_two = {
			.value = &tag, .elem_size = 4, .min = 1, .max = 2, .what = "tags",
		};
		static const struct agri_cfg_array exactly = {
			.value = &tag, .elem_size = 4, .min = 2, .max = 2, .what = "tags",
		};
		char store[2][4];
		struct agri_err err;
		size_t n = 5;
		cJSON *root;

		CHECK_INT(agri_json_parse("[]", 2, 64, 4, &root, &err), 0);
		CHECK_INT(agri_cfg_read_array(root, "t", &one_two, store, &n, &err), -EINVAL);
		CHECK_STR(err.msg, "expected an array of 1 or 2 tags");
		CHECK_INT(agri_cfg_read_array(root, "t", &exactly, store, &n, &err), -EINVAL);
		CHECK_STR(err.msg, "expected an array of 2 tags");
		CHECK_INT(n, 5); /* the count only on success */
		cJSON_Delete(root);
	}
}

/* The optional "why" of a suspect reading (issue 19): round trip, only with
 * q "suspect", a short snake_case token, and the encoder refuses the rest. */
static void test_why(void)
{
	static const char *const ok[] = {
		TEL("{'ts':" TS ",'sensor':'sonde1','metric':'conductivity','value':0,'unit':'mS/cm',"
		    "'q':'suspect','why':'dry'}"),
		TEL("{'ts':" TS ",'sensor':'sonde1','metric':'salinity','value':11.9,'unit':'g/L',"
		    "'q':'suspect','why':'full_scale'}," R_OK),
		TEL("{'ts':" TS ",'sensor':'s','metric':'ph','value':7,'unit':'pH','q':'suspect',"
		    "'why':'a123456789_abcde'}"),
	};
	static const struct {
		const char *json, *path, *msg;
	} bad_why[] = {
		{TEL("{'ts':" TS ",'sensor':'s','metric':'ph','value':7,'unit':'pH','q':'ok','why':'dry'}"),
		 "readings[0].why", "only allowed when q is \"suspect\""},
		{TEL("{'ts':" TS ",'sensor':'s','metric':'ph','value':null,'unit':'pH','q':'error','why':'dry'}"),
		 "readings[0].why", "only allowed when q is \"suspect\""},
		{TEL("{'ts':" TS ",'sensor':'s','metric':'ph','value':7,'unit':'pH','q':'suspect','why':'Dry'}"),
		 "readings[0].why", "expected a reason [a-z][a-z0-9_]{0,15}"},
		{TEL("{'ts':" TS ",'sensor':'s','metric':'ph','value':7,'unit':'pH','q':'suspect','why':''}"),
		 "readings[0].why", "expected a reason [a-z][a-z0-9_]{0,15}"},
		{TEL("{'ts':" TS ",'sensor':'s','metric':'ph','value':7,'unit':'pH','q':'suspect',"
		     "'why':'a123456789_abcdef'}"),
		 "readings[0].why", "expected a reason [a-z][a-z0-9_]{0,15}"},
		{TEL("{'ts':" TS ",'sensor':'s','metric':'ph','value':7,'unit':'pH','q':'suspect','why':1}"),
		 "readings[0].why", "expected a string"},
	};
	char buf[4096];
	struct agri_err err;

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(ok); i++) {
		const char *json = jq(ok[i]);

		CHECK_INT(agri_telemetry_decode(json, strlen(json), &tel, &err), 0);
		CHECK_INT(agri_telemetry_encode(&tel, buf, sizeof(buf)), strlen(json));
		CHECK_STR(buf, json);
	}
	CHECK_STR(readings[0].why, "a123456789_abcde");
	CHECK(agri_why_valid(AGRI_WHY_DRY) && agri_why_valid(AGRI_WHY_STUCK) &&
	      agri_why_valid(AGRI_WHY_FULL_SCALE) && agri_why_valid(AGRI_WHY_RANGE) &&
	      agri_why_valid(AGRI_WHY_MAP));
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(bad_why); i++) {
		const char *json = jq(bad_why[i].json);

		memset(&err, 0, sizeof(err));
		/* One bad reading in a batch: the envelope stands (outcome 1). */
		CHECK_INT(agri_telemetry_decode(json, strlen(json), &tel, &err), 1);
		CHECK_STR(err.path, bad_why[i].path);
		CHECK_STR(err.msg, bad_why[i].msg);
	}
	/* The encoder refuses what the decoder would. */
	memset(&readings[0], 0, sizeof(readings[0]));
	strcpy(readings[0].sensor, "s");
	strcpy(readings[0].metric, "ph");
	readings[0].has_value = true;
	readings[0].q = AGRI_Q_OK;
	strcpy(readings[0].why, "dry");
	strcpy(tel.station, "DT-W01");
	tel.n = 1;
	CHECK_INT(agri_telemetry_encode(&tel, buf, sizeof(buf)), -EINVAL);
	readings[0].q = AGRI_Q_SUSPECT;
	CHECK(agri_telemetry_encode(&tel, buf, sizeof(buf)) > 0);
	strcpy(readings[0].why, "no way");
	CHECK_INT(agri_telemetry_encode(&tel, buf, sizeof(buf)), -EINVAL);
}

int main(void)
{
	test_why();
	test_canonical();
	test_normalize();
	test_decoded_fields();
	test_bad();
	test_limits();
	test_partial();
	test_topic_mismatch();
	test_encode_refuses();
	test_ack_add();
	test_json_helpers();
	test_cfg_read();
	test_cfg_read_array();
	return test_main("test_proto_msg");
}
