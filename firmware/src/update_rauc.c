/*
 * rauc's command line from the update agent (update_rauc.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agri/util.h"
#include "update_rauc.h"

extern char **environ;

static void last_line(const char *s, size_t n, char *out, size_t len)
{
	size_t end = n, start;

	while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r' || s[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	snprintf(out, len, "%.*s", (int)(end - start), s + start);
}

int rauc_run(char *const argv[], int timeout_s, char *out, size_t cap, char *err,
	     size_t err_len)
{
	posix_spawn_file_actions_t fa;
	int po[2] = {-1, -1}, pe[2] = {-1, -1}, status = 0, rc;
	char ebuf[4096];
	size_t on = 0, en = 0;
	int64_t deadline = util_mono_ms() + (int64_t)timeout_s * 1000;
	bool open_o = true, open_e = true, killed = false;
	pid_t pid;

	if (err && err_len)
		err[0] = '\0';
	if (out && cap)
		out[0] = '\0';
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		rc = -errno;
		goto close;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	if (rc != 0) {
		if (err)
			snprintf(err, err_len, "cannot run %s: %s", argv[0], strerror(rc));
		rc = -rc;
		goto close;
	}
	while (open_o || open_e) {
		struct pollfd p[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
		int64_t left = deadline - util_mono_ms();
		char tmp[4096];

		if (!open_o)
			p[0].fd = -1;
		if (!open_e)
			p[1].fd = -1;
		if (left <= 0 && !killed) {
			kill(pid, SIGKILL);
			killed = true;
		}
		if (poll(p, 2, left > 0 ? (int)(left > 1000 ? 1000 : left) : 1000) < 0 &&
		    errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(p[i].fd, tmp, sizeof(tmp));
			if (n <= 0) {
				if (i == 0)
					open_o = false;
				else
					open_e = false;
				continue;
			}
			if (i == 0 && out) {
				size_t k = (size_t)n < cap - 1 - on ? (size_t)n : cap - 1 - on;

				memcpy(out + on, tmp, k);
				on += k;
				out[on] = '\0';
			} else if (i == 1) {
				if (en + (size_t)n > sizeof(ebuf)) { /* keep the tail */
					size_t keep = sizeof(ebuf) / 2;

					memmove(ebuf, ebuf + en - keep, keep);
					en = keep;
				}
				if ((size_t)n > sizeof(ebuf) - en)
					n = (ssize_t)(sizeof(ebuf) - en);
				memcpy(ebuf + en, tmp, (size_t)n);
				en += (size_t)n;
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (err)
		last_line(ebuf, en, err, err_len);
	if (killed) {
		rc = -ETIMEDOUT;
		if (err)
			snprintf(err, err_len, "%s: no answer in %d s", argv[0], timeout_s);
	} else if (WIFEXITED(status)) {
		rc = WEXITSTATUS(status);
	} else {
		rc = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		if (err && !err[0])
			snprintf(err, err_len, "%s killed by signal %d", argv[0],
				 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
close:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	return rc;
}

static void copy_str(const cJSON *o, const char *key, char *out, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (cJSON_IsString(v))
		snprintf(out, len, "%s", v->valuestring);
}

int rauc_status(const char *rauc, struct rauc_status *st, char *err, size_t err_len)
{
	char *argv[] = {(char *)rauc, "status", "--detailed", "--output-format=json", NULL};
	const cJSON *slots, *e;
	char *out = malloc(65536), booted_slot[RAUC_NAME_MAX] = "", primary_slot[RAUC_NAME_MAX];
	cJSON *doc = NULL;
	int rc;

	memset(st, 0, sizeof(*st));
	if (!out)
		return -ENOMEM;
	rc = rauc_run(argv, 30, out, 65536, err, err_len);
	if (rc != 0) {
		if (rc > 0)
			rc = -EIO;
		goto out;
	}
	doc = cJSON_Parse(out);
	if (!doc) {
		snprintf(err, err_len, "rauc status: not JSON");
		rc = -EBADMSG;
		goto out;
	}
	copy_str(doc, "compatible", st->compatible, sizeof(st->compatible));
	copy_str(doc, "booted", st->booted, sizeof(st->booted));
	primary_slot[0] = '\0';
	copy_str(doc, "boot_primary", primary_slot, sizeof(primary_slot));
	slots = cJSON_GetObjectItemCaseSensitive(doc, "slots");
	cJSON_ArrayForEach(e, slots) {
		const cJSON *s = e->child;
		char bootname[RAUC_NAME_MAX] = "", state[16] = "", bs[16] = "";

		if (!s || !cJSON_IsObject(s))
			continue;
		copy_str(s, "bootname", bootname, sizeof(bootname));
		copy_str(s, "state", state, sizeof(state));
		copy_str(s, "boot_status", bs, sizeof(bs));
		if (!bootname[0])
			continue;
		if (!strcmp(s->string, primary_slot))
			snprintf(st->primary, sizeof(st->primary), "%s", bootname);
		if (!strcmp(bootname, st->booted) || !strcmp(state, "booted")) {
			const cJSON *ss = cJSON_GetObjectItemCaseSensitive(s, "slot_status");
			const cJSON *b = cJSON_GetObjectItemCaseSensitive(ss, "bundle");

			snprintf(booted_slot, sizeof(booted_slot), "%s", s->string);
			copy_str(b, "version", st->version, sizeof(st->version));
		} else {
			snprintf(st->other, sizeof(st->other), "%s", bootname);
			snprintf(st->other_state, sizeof(st->other_state), "%s", bs);
		}
	}
	if (!st->booted[0] || !booted_slot[0]) {
		snprintf(err, err_len, "rauc status: no booted slot");
		rc = -ENOENT;
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(doc);
	free(out);
	return rc;
}
