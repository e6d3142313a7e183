/*
 * Every library error agrictl can meet, in words a technician can act on,
 * in one place (STYLE: translate each library's codes once): libmodbus's
 * errnos (the system's and its EMB* codes: exceptions, CRC, wrong
 * length), paho's MQTTClient return codes (CONNACK 5: the user name or
 * password) and the errnos of opening a serial port or a TCP connection.
 * The texts go through T() (msgs.h): Vietnamese under a vi locale.
 */
#ifndef AGRICTL_ERRTEXT_H
#define AGRICTL_ERRTEXT_H

/* A request's errno (libmodbus): "no answer (timeout)", "exception 02,
 * illegal data address: the device has no such register (another
 * model, or the wrong profile?)", "a reply with a bad CRC: ...". */
const char *errtext_modbus(int e);

/* Why a link cannot be opened (errno of modbus_connect): for a serial
 * port ("no such device: is the adapter plugged in? ...") or a TCP
 * connection ("connection refused: nothing listens on that port"). */
const char *errtext_open(int e, int is_tcp);

/* A paho MQTTClient_connect() return code (CONNACK 1..5 or paho's own
 * negative codes): "the broker refused the user name or password
 * (CONNACK 5, not authorised): check --username and --password-file". */
const char *errtext_mqtt(int rc);

#endif
