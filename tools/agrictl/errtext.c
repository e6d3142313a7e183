/*
 * The library errors agrictl meets, translated once (see errtext.h).
 */
#include "errtext.h"

#include <errno.h>
#include <string.h>

#include <MQTTClient.h>
#include <modbus/modbus.h>

#include "msgs.h"

struct code_text {
	int code;
	const char *text;
};

static const char *lookup(const struct code_text *t, size_t n, int code)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].code == code)
			return T(t[i].text);
	return NULL;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct code_text modbus_texts[] = {
	{ETIMEDOUT, "no answer (timeout)"},
	{EMBBADCRC, "a reply with a bad CRC: line settings (--baud, --parity), noise, "
		    "termination, or two devices with the same slave id"},
	{EMBBADDATA, "a reply of the wrong length or shape: not this device, or not Modbus"},
	{EMBBADEXC, "a reply with an invalid exception code: not Modbus?"},
	{EMBUNKEXC, "a reply with an unknown exception code"},
	{EMBMDATA, "a reply with too many data"},
	{EMBBADSLAVE, "a reply from another slave id: two devices answering?"},
	{EMBXILFUN, "exception 01, illegal function: the device does not support this "
		    "request (another model, or the wrong profile?)"},
	{EMBXILADD, "exception 02, illegal data address: the device has no such register "
		    "(another model, or the wrong profile?)"},
	{EMBXILVAL, "exception 03, illegal data value: the device refused the value or count"},
	{EMBXSFAIL, "exception 04, device failure: the device could not do it"},
	{EMBXACK, "exception 05, acknowledge: the device is busy with it, ask again later"},
	{EMBXSBUSY, "exception 06, device busy: ask again later"},
	{EMBXNACK, "exception 07, negative acknowledge"},
	{EMBXMEMPAR, "exception 08, memory parity error in the device"},
	{EMBXGPATH, "exception 0A, gateway path unavailable: the Modbus TCP gateway has "
		    "no route to this unit id"},
	{EMBXGTAR, "exception 0B, no device at this unit id behind the Modbus TCP gateway"},
	{ECONNRESET, "the peer closed the connection without answering: not a Modbus TCP "
		     "server, or it refuses this client"},
	{EPIPE, "the connection is broken: the peer closed it"},
	{ENOTCONN, "not connected"},
	{EBADF, "the connection is closed"},
	{EIO, "I/O error: was the adapter unplugged?"},
	{EINVAL, "invalid request or settings"},
};

const char *errtext_modbus(int e)
{
	const char *t = lookup(modbus_texts, N(modbus_texts), e);

	return t ? t : modbus_strerror(e);
}

static const struct code_text serial_texts[] = {
	{ENOENT, "no such device: is the adapter plugged in? (ls /dev/ttyUSB* /dev/serial/by-id)"},
	{ENODEV, "no such device: was it unplugged?"},
	{ENXIO, "no such device: was it unplugged?"},
	{EACCES, "permission denied: add yourself to group dialout "
		 "(sudo adduser $USER dialout, then log in again)"},
	{EPERM, "permission denied"},
	{EBUSY, "the port is in use by another program: is agri-station running? "
		"(sudo systemctl stop agri-station)"},
	{ENOTTY, "not a serial port"},
	{EINVAL, "the port refused these line settings (--baud, --parity)"},
	{EIO, "I/O error: was the adapter unplugged?"},
};

static const struct code_text tcp_texts[] = {
	{ECONNREFUSED, "connection refused: nothing listens on that port "
		       "(the device's or gateway's Modbus TCP port, usually 502)"},
	{ETIMEDOUT, "connection timed out: no such host on the network, or a firewall"},
	{EHOSTUNREACH, "no route to the host: check the address and the network"},
	{ENETUNREACH, "the network is unreachable: check the laptop's network"},
	{ECONNRESET, "the peer closed the connection"},
	{EINVAL, "invalid address"},
};

const char *errtext_open(int e, int is_tcp)
{
	const char *t = is_tcp ? lookup(tcp_texts, N(tcp_texts), e)
			       : lookup(serial_texts, N(serial_texts), e);

	return t ? t : modbus_strerror(e);
}

static const struct code_text mqtt_texts[] = {
	{1, "the broker refused the MQTT protocol version (CONNACK 1)"},
	{2, "the broker refused the client id (CONNACK 2)"},
	{3, "the broker is unavailable (CONNACK 3): is it starting or overloaded?"},
	{4, "the broker refused the user name or password (CONNACK 4): check --username "
	    "and --password-file"},
	{5, "the broker refused the user name or password (CONNACK 5, not authorised): "
	    "check --username and --password-file; the agrictl account exists only on the "
	    "hub's loopback listener"},
	{MQTTCLIENT_FAILURE, "cannot reach the broker: nothing listens there, the TLS "
			     "handshake failed (--ca-file, the host name in its certificate), "
			     "or the network is down"},
	{MQTTCLIENT_DISCONNECTED, "the broker closed the connection"},
	{MQTTCLIENT_SSL_NOT_SUPPORTED, "this paho library has no TLS"},
	{MQTTCLIENT_BAD_PROTOCOL, "bad broker URL: expected tcp://HOST:PORT or ssl://HOST:PORT"},
};

const char *errtext_mqtt(int rc)
{
	const char *t = lookup(mqtt_texts, N(mqtt_texts), rc);

	return t ? t : MQTTClient_strerror(rc);
}
