/*
 * paho's own failover, for comparison (test_station_hubs.py): one
 * MQTTAsync client with serverURIs [A, B] and automaticReconnect, as a
 * station would be without its own connect loop. Prints one line per
 * event ("<monotonic s> connected <port>", "<monotonic s> lost") until
 * killed; <port> is the broker's, read from the connected socket (paho's
 * connected callback does not say which URI it chose).
 *
 *   paho_failover CLIENT_ID URI_A URI_B
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The peer port of this process's one connected IPv4 TCP socket. */
static int peer_port(void)
{
	struct dirent *de;
	int port = 0;
	DIR *d = opendir("/proc/self/fd");

	while (d && (de = readdir(d))) {
		struct sockaddr_in sa;
		socklen_t sl = sizeof(sa);
		int fd = atoi(de->d_name);

		if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && fd != dirfd(d) &&
		    getpeername(fd, (struct sockaddr *)&sa, &sl) == 0 && sa.sin_family == AF_INET)
			port = ntohs(sa.sin_port);
	}
	if (d)
		closedir(d);
	return port;
}

static void on_connected(void *ctx, char *cause)
{
	(void)ctx;
	(void)cause;
	printf("%.3f connected %d\n", mono(), peer_port());
	fflush(stdout);
}

static void on_lost(void *ctx, char *cause)
{
	(void)ctx;
	(void)cause;
	printf("%.3f lost\n", mono());
	fflush(stdout);
}

static int on_message(void *ctx, char *topic, int len, MQTTAsync_message *m)
{
	(void)ctx;
	(void)len;
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

int main(int argc, char **argv)
{
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
	MQTTAsync c;

	if (argc != 4) {
		fprintf(stderr, "usage: paho_failover CLIENT_ID URI_A URI_B\n");
		return 2;
	}
	if (MQTTAsync_create(&c, argv[2], argv[1], MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
	    MQTTASYNC_SUCCESS)
		return 1;
	MQTTAsync_setCallbacks(c, NULL, on_lost, on_message, NULL);
	MQTTAsync_setConnected(c, NULL, on_connected);
	o.keepAliveInterval = 2; /* as the station asks for with keepalive_s 5 */
	o.cleansession = 1;
	o.connectTimeout = 2;
	o.serverURIs = &argv[2];
	o.serverURIcount = 2;
	o.automaticReconnect = 1;
	o.minRetryInterval = 1;
	o.maxRetryInterval = 2;
	if (MQTTAsync_connect(c, &o) != MQTTASYNC_SUCCESS)
		return 1;
	for (;;)
		pause();
}
