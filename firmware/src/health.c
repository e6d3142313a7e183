/*
 * Reasons for people (see health.h). One table translates the errnos the
 * buses see (the system's and libmodbus's EMB* codes) into words; the
 * sensor reason adds what the other sensors on the bus say.
 */
#include "health.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <modbus/modbus.h>

static const struct {
	int e;
	const char *text;
} texts[] = {
	{ENOENT, "no such device"},
	{ENODEV, "no such device (unplugged?)"},
	{ENXIO, "no such device (unplugged?)"},
	{EACCES, "permission denied (the service user needs group dialout)"},
	{EPERM, "permission denied"},
	{EBUSY, "device busy (another program has it open)"},
	{ENOTTY, "not a serial port"},
	{EIO, "I/O error (adapter unplugged?)"},
	{ECONNREFUSED, "connection refused (nothing listens there)"},
	{EHOSTUNREACH, "no route to the host"},
	{ENETUNREACH, "network unreachable"},
	{ETIMEDOUT, "no answer (timeout)"},
	{ECONNRESET, "the peer closed the connection"},
	{EPIPE, "the connection is broken"},
	{ENOTCONN, "the bus is down"},
	{EINVAL, "invalid line settings"},
	{EMBBADCRC, "replies with a bad CRC (line settings, noise, termination, "
		    "or two devices with the same id)"},
	{EMBBADDATA, "a reply of the wrong length (another device than the profile's?)"},
	{EMBBADEXC, "an invalid exception code"},
	{EMBMDATA, "too many data in a reply"},
	{EMBBADSLAVE, "a reply from another slave id"},
	{EMBXILFUN, "exception 01, illegal function (another device than the profile's?)"},
	{EMBXILADD, "exception 02, illegal address: no such register (wrong profile or model?)"},
	{EMBXILVAL, "exception 03, illegal value"},
	{EMBXSFAIL, "exception 04, device failure"},
	{EMBXACK, "exception 05, acknowledged, busy"},
	{EMBXSBUSY, "exception 06, device busy"},
	{EMBXNACK, "exception 07, negative acknowledge"},
	{EMBXMEMPAR, "exception 08, memory parity error"},
	{EMBXGPATH, "exception 0A, the gateway has no path to this unit"},
	{EMBXGTAR, "exception 0B, no device at this unit id behind the gateway"},
};

const char *health_errno_text(int e)
{
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (texts[i].e == e)
			return texts[i].text;
	return e ? modbus_strerror(e) : "unknown error";
}

void health_bus_reason(const struct station_bus *b, int e, char *buf, size_t len)
{
	const char *what = e ? health_errno_text(e) : "not opened yet";

	if (b->is_tcp)
		snprintf(buf, len, "%s:%d: %s", b->host, (int)b->port,
			 e == ETIMEDOUT ? "connection timed out" : what);
	else
		snprintf(buf, len, "%s: %s", b->device, what);
}

void health_sensor_reason(const struct station_sensor *s, const struct station_bus *b,
			  int e, const struct health_bus_facts *f, char *buf, size_t len)
{
	char why[160];
	int id = (int)s->slave;

	if (e == ENOTCONN || (!f->bus_open && e != ETIMEDOUT && !(e >= EMBXILFUN &&
								 e <= EMBBADSLAVE))) {
		health_bus_reason(b, f->bus_error, why, sizeof(why));
		snprintf(buf, len, "bus %s down: %s", b->name, why);
		return;
	}
	if (e == ETIMEDOUT) {
		if (f->others_answering > 0)
			snprintf(buf, len, "timeout: slave %d does not answer; other sensors on %s "
				 "do (wrong slave id, or its power or cable)", id, b->name);
		else if (f->others > 0)
			snprintf(buf, len, "timeout: nothing answers on %s (power, wiring A/B, "
				 "termination, line settings)", b->name);
		else
			snprintf(buf, len, "timeout: slave %d does not answer on %s, nothing else "
				 "there to compare (power, wiring, line settings, slave id)", id,
				 b->name);
		return;
	}
	snprintf(buf, len, "slave %d: %s", id, health_errno_text(e));
}
