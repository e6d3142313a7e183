/*
 * `agrictl flash IMAGE DEVICE [--station ID --from DIR] [--yes]`
 * (docs/update.md "Flash a new station"): writes a station image made by
 * scripts/build-image onto an SD card, eMMC or USB disk and reads it back.
 *
 * Refused before a byte is written: an image whose IMAGE.sha256 (written
 * beside it by build-image) is missing or does not match; a device that is
 * not a block device (a regular file only with --to-file, for tests), that
 * is mounted, holds a mounted partition or swap, or holds the running
 * system; a device smaller than the image. The device is opened O_EXCL,
 * which the kernel refuses while anything has it mounted.
 *
 * With --station ID --from DIR (agrictl provision's output) the data
 * partition (partition 4, label agri-data) gets DIR's station.json,
 * station.pass, ca.crt, update.json and the technicians' NAME.pub under etc/agri/,
 * so one command makes a ready station.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <linux/blkpg.h>
#include <linux/fs.h>
#include <openssl/evp.h>

#include "agri/exit.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "agrictl.h"
#include "update_fetch.h"

#define CHUNK (4u << 20)
#define DATA_PART 4
#define DATA_LABEL "agri-data"

/* The whole-disk device of block device st_rdev (its own for a disk). */
static dev_t disk_of(dev_t d)
{
	char link[PATH_MAX], path[128];
	unsigned ma, mi;
	FILE *f;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition", major(d), minor(d));
	if (access(path, F_OK) != 0)
		return d;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../dev", major(d), minor(d));
	f = fopen(path, "r");
	if (!f)
		return d;
	n = fscanf(f, "%u:%u", &ma, &mi);
	fclose(f);
	(void)link;
	return n == 2 ? makedev(ma, mi) : d;
}

/* Why dev (a whole disk) must not be written, or NULL. */
static const char *disk_in_use(dev_t disk, char *why, size_t len)
{
	char line[1024], src[256], dst[256];
	struct stat st;
	FILE *f;

	if (stat("/", &st) == 0 && major(st.st_dev) != 0 && disk_of(st.st_dev) == disk) {
		snprintf(why, len, "it holds the running system (/)");
		return why;
	}
	f = fopen("/proc/self/mounts", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%255s %255s", src, dst) != 2 || src[0] != '/')
			continue;
		if (stat(src, &st) == 0 && S_ISBLK(st.st_mode) && disk_of(st.st_rdev) == disk) {
			snprintf(why, len, "%s is mounted on %s", src, dst);
			fclose(f);
			return why;
		}
	}
	if (f)
		fclose(f);
	f = fopen("/proc/swaps", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%255s", src) != 1 || src[0] != '/')
			continue;
		if (stat(src, &st) == 0 && S_ISBLK(st.st_mode) && disk_of(st.st_rdev) == disk) {
			snprintf(why, len, "%s is in use as swap", src);
			fclose(f);
			return why;
		}
	}
	if (f)
		fclose(f);
	return NULL;
}

static int image_verify(const char *image, char hex[65])
{
	char path[PATH_MAX + 8], *buf = NULL, want[65];
	size_t len;
	int rc;

	snprintf(path, sizeof(path), "%s.sha256", image);
	if (util_read_file(path, 4096, &buf, &len) < 0 || len < 64) {
		fprintf(stderr, "agrictl: %s: no checksum file %s (scripts/build-image writes it): "
			"refusing an image that cannot be verified\n", image, path);
		free(buf);
		return AGRI_EXIT_FAIL;
	}
	memcpy(want, buf, 64);
	want[64] = '\0';
	free(buf);
	fprintf(stderr, "verifying %s ...\n", image);
	if ((rc = fetch_sha256(image, hex)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", image, strerror(-rc));
		return AGRI_EXIT_FAIL;
	}
	if (strcmp(hex, want)) {
		fprintf(stderr, "agrictl: %s does not verify: its SHA-256 is %s, %s says %s\n",
			image, hex, path, want);
		return AGRI_EXIT_FAIL;
	}
	return 0;
}

static void progress(const char *what, uint64_t done, uint64_t total, int64_t t0)
{
	int64_t ms = util_mono_ms() - t0;
	int pct = total ? (int)(done * 100 / total) : 100, bars = pct / 4;
	char bar[26];

	memset(bar, '#', (size_t)bars);
	memset(bar + bars, ' ', (size_t)(25 - bars));
	bar[25] = '\0';
	fprintf(stderr, "\r%s [%s] %3d%% %" PRIu64 "/%" PRIu64 " MiB %.1f MiB/s", what, bar, pct,
		done >> 20, total >> 20, ms > 0 ? (double)done / 1048576.0 / ((double)ms / 1000) : 0);
	if (done >= total)
		fputc('\n', stderr);
}

/* Writes image to fd; reads the device back and compares SHA-256. */
static int write_and_verify(const char *image, const char *dev, int fd, uint64_t size,
			    const char *hex)
{
	unsigned char *buf = malloc(CHUNK), md[EVP_MAX_MD_SIZE];
	char got[65];
	unsigned mdlen = 0;
	int in = open(image, O_RDONLY | O_CLOEXEC), rc = AGRI_EXIT_FAIL;
	uint64_t done = 0;
	int64_t t0 = util_mono_ms(), last = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!buf || in < 0 || !ctx)
		goto out;
	while (done < size) {
		ssize_t n = read(in, buf, CHUNK);

		if (n <= 0) {
			fprintf(stderr, "\nagrictl: reading %s: %s\n", image, n < 0 ? strerror(errno) :
				"short file");
			goto out;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));

			if (w < 0) {
				fprintf(stderr, "\nagrictl: writing %s: %s\n", dev, strerror(errno));
				goto out;
			}
			off += w;
		}
		done += (uint64_t)n;
		if (util_mono_ms() - last > 200 || done == size) {
			progress("writing  ", done, size, t0);
			last = util_mono_ms();
		}
	}
	if (fsync(fd) < 0) {
		fprintf(stderr, "agrictl: flushing %s: %s\n", dev, strerror(errno));
		goto out;
	}
	(void)ioctl(fd, BLKFLSBUF, 0); /* read back from the medium, not the cache */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (lseek(fd, 0, SEEK_SET) < 0 || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	t0 = util_mono_ms();
	for (done = 0; done < size;) {
		size_t want = size - done < CHUNK ? (size_t)(size - done) : CHUNK;
		ssize_t n = read(fd, buf, want);

		if (n <= 0) {
			fprintf(stderr, "\nagrictl: reading back %s: %s\n", dev,
				n < 0 ? strerror(errno) : "short device");
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		done += (uint64_t)n;
		if (util_mono_ms() - last > 200 || done == size) {
			progress("verifying", done, size, t0);
			last = util_mono_ms();
		}
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	for (unsigned i = 0; i < 32; i++)
		snprintf(got + 2 * i, 3, "%02x", md[i]);
	if (strcmp(got, hex)) {
		fprintf(stderr, "agrictl: %s reads back differently (SHA-256 %s, written %s): "
			"a failing card?\n", dev, got, hex);
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	if (in >= 0)
		close(in);
	free(buf);
	return rc;
}

static int copy_file(const char *src, const char *dst, mode_t mode)
{
	char *buf = NULL;
	size_t len;
	int rc = util_read_file(src, 1 << 20, &buf, &len);

	if (rc < 0)
		return rc;
	rc = util_write_file_atomic(dst, buf, len);
	free(buf);
	if (rc == 0 && chmod(dst, mode) < 0)
		rc = -errno;
	return rc;
}

/* The data partition's device node (DEVICEpN or DEVICEN). */
static int data_partition(const char *dev, char *out, size_t len, int tries_max)
{
	size_t n = strlen(dev);
	bool digit = n && dev[n - 1] >= '0' && dev[n - 1] <= '9';

	for (int tries = 0; tries < tries_max; tries++) {
		snprintf(out, len, "%s%s%d", dev, digit ? "p" : "", DATA_PART);
		if (access(out, F_OK) == 0)
			return 0;
		util_sleep_ms(100);
	}
	return -ENOENT;
}

/* Tells the kernel about partition n of the MBR on fd (what partx -a
 * does), for a kernel that did not re-read the table (a loop device
 * without partition scanning). An existing partition is fine. */
static void add_partition(int fd, int n)
{
	unsigned char mbr[512];
	struct blkpg_partition p = {0};
	struct blkpg_ioctl_arg a = {.op = BLKPG_ADD_PARTITION, .datalen = sizeof(p), .data = &p};
	const unsigned char *e = mbr + 446 + 16 * (n - 1);
	uint32_t start, sectors;

	if (pread(fd, mbr, sizeof(mbr), 0) != (ssize_t)sizeof(mbr) || mbr[510] != 0x55 ||
	    mbr[511] != 0xaa)
		return;
	start = (uint32_t)e[8] | (uint32_t)e[9] << 8 | (uint32_t)e[10] << 16 | (uint32_t)e[11] << 24;
	sectors = (uint32_t)e[12] | (uint32_t)e[13] << 8 | (uint32_t)e[14] << 16 |
		  (uint32_t)e[15] << 24;
	if (!e[4] || !sectors)
		return;
	p.pno = n;
	p.start = (long long)start * 512;
	p.length = (long long)sectors * 512;
	(void)ioctl(fd, BLKPG, &a);
}

/* The data partition of the disk just written (fd, dev) into part. */
static int find_data_partition(const char *dev, int fd, char *part, size_t len)
{
	if (ioctl(fd, BLKRRPART, 0) < 0 && errno != EINVAL)
		fprintf(stderr, "agrictl: re-reading the partition table of %s: %s\n", dev,
			strerror(errno));
	if (data_partition(dev, part, len, 10) == 0)
		return 0;
	add_partition(fd, DATA_PART);
	if (data_partition(dev, part, len, 50) == 0)
		return 0;
	fprintf(stderr, "agrictl: %s has no partition %d after writing: cannot add the "
		"station's files\n", dev, DATA_PART);
	return AGRI_EXIT_FAIL;
}

/* Puts the station's files from dir on the data partition part (the disk
 * is closed: its exclusive open would keep the partition from mounting). */
static int write_station(const char *part, const char *station, const char *dir)
{
	static const struct {
		const char *name;
		mode_t mode;
		bool required;
	} files[] = {
		{"station.json", 0640, true}, {"station.pass", 0640, true},
		{"ca.crt", 0644, false}, {"update.json", 0644, false},
	};
	char mnt[] = "/tmp/agrictl-flash-XXXXXX", src[PATH_MAX], dst[PATH_MAX + 64];
	char label[17] = "";
	struct dirent *e;
	DIR *d;
	int rc = AGRI_EXIT_FAIL, pfd;

	pfd = open(part, O_RDONLY | O_CLOEXEC);
	if (pfd < 0 || pread(pfd, label, 16, 1024 + 0x78) != 16 || strcmp(label, DATA_LABEL)) {
		fprintf(stderr, "agrictl: %s is not the image's data partition (label \"%s\", expected "
			"\"%s\")\n", part, label, DATA_LABEL);
		if (pfd >= 0)
			close(pfd);
		return AGRI_EXIT_FAIL;
	}
	close(pfd);
	if (!mkdtemp(mnt) || mount(part, mnt, "ext4", 0, NULL) < 0) {
		fprintf(stderr, "agrictl: cannot mount %s: %s\n", part, strerror(errno));
		rmdir(mnt);
		return AGRI_EXIT_FAIL;
	}
	snprintf(dst, sizeof(dst), "%s/etc/agri/technicians", mnt);
	if (util_mkdirs(dst, 0755) < 0)
		goto umount;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int r;

		snprintf(src, sizeof(src), "%s/%s", dir, files[i].name);
		snprintf(dst, sizeof(dst), "%s/etc/agri/%s", mnt, files[i].name);
		r = copy_file(src, dst, files[i].mode);
		if (r == -ENOENT && !files[i].required)
			continue;
		if (r < 0) {
			fprintf(stderr, "agrictl: %s: %s\n", src, strerror(-r));
			goto umount;
		}
	}
	snprintf(src, sizeof(src), "%s/technicians", dir);
	d = opendir(src);
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char s2[PATH_MAX + 300];

		if (n < 5 || strcmp(e->d_name + n - 4, ".pub"))
			continue;
		snprintf(s2, sizeof(s2), "%s/%s", src, e->d_name);
		snprintf(dst, sizeof(dst), "%s/etc/agri/technicians/%s", mnt, e->d_name);
		if (copy_file(s2, dst, 0644) < 0) {
			closedir(d);
			goto umount;
		}
	}
	if (d)
		closedir(d);
	sync();
	fprintf(stderr, "station %s: station.json and credentials written to %s\n", station, part);
	rc = 0;
umount:
	if (umount(mnt) < 0)
		fprintf(stderr, "agrictl: cannot unmount %s: %s\n", mnt, strerror(errno));
	rmdir(mnt);
	return rc;
}

int agrictl_flash(int argc, char **argv)
{
	static const struct option opts[] = {
		{"station", required_argument, 0, 's'}, {"from", required_argument, 0, 'f'},
		{"yes", no_argument, 0, 'y'}, {"help", no_argument, 0, 'h'}, {0}};
	const char *station = NULL, *from = NULL, *image, *dev;
	char hex[65], why[600], cfg[PATH_MAX + 16], part[PATH_MAX];
	struct stat ist, dst;
	uint64_t dev_size = 0;
	bool yes = false;
	int c, fd, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': station = optarg; break;
		case 'f': from = optarg; break;
		case 'y': yes = true; break;
		case 'h':
			puts("usage: agrictl flash IMAGE DEVICE [--station ID --from DIR] [--yes]\n"
			     "  IMAGE        a station image from scripts/build-image (IMAGE.sha256 beside it)\n"
			     "  DEVICE       the whole disk: /dev/sdX, /dev/mmcblkN, a loop device\n"
			     "  --station ID the station it becomes; --from DIR: agrictl provision --out DIR\n"
			     "  --yes        do not ask before overwriting DEVICE\n"
			     "refused: an image that does not verify, a mounted or system disk");
			return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	if (optind != argc - 2) {
		fprintf(stderr, "agrictl: flash needs IMAGE DEVICE (see --help)\n");
		return AGRI_EXIT_USAGE;
	}
	if (!station != !from || (station && !agri_station_id_valid(station))) {
		fprintf(stderr, "agrictl: --station ID and --from DIR go together (a valid id)\n");
		return AGRI_EXIT_USAGE;
	}
	image = argv[optind];
	dev = argv[optind + 1];
	if (from) {
		snprintf(cfg, sizeof(cfg), "%s/station.json", from);
		if (access(cfg, R_OK) != 0) {
			fprintf(stderr, "agrictl: %s: %s (agrictl provision --out DIR makes it)\n", cfg,
				strerror(errno));
			return AGRI_EXIT_FAIL;
		}
	}
	if (stat(image, &ist) < 0 || !S_ISREG(ist.st_mode)) {
		fprintf(stderr, "agrictl: %s: not an image file\n", image);
		return AGRI_EXIT_FAIL;
	}
	if (stat(dev, &dst) < 0 || !S_ISBLK(dst.st_mode)) {
		fprintf(stderr, "agrictl: %s: not a block device\n", dev);
		return AGRI_EXIT_FAIL;
	}
	if (disk_of(dst.st_rdev) != dst.st_rdev) {
		fprintf(stderr, "agrictl: %s is a partition: give the whole disk\n", dev);
		return AGRI_EXIT_FAIL;
	}
	if (disk_in_use(dst.st_rdev, why, sizeof(why))) {
		fprintf(stderr, "agrictl: refusing %s: %s\n", dev, why);
		return AGRI_EXIT_FAIL;
	}
	if ((rc = image_verify(image, hex)) != 0)
		return rc;
	fd = open(dev, O_RDWR | O_EXCL | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "agrictl: refusing %s: %s\n", dev,
			errno == EBUSY ? "it is in use (mounted, or held by another program)"
				       : strerror(errno));
		return AGRI_EXIT_FAIL;
	}
	if (ioctl(fd, BLKGETSIZE64, &dev_size) < 0 || dev_size < (uint64_t)ist.st_size) {
		fprintf(stderr, "agrictl: %s holds %" PRIu64 " bytes, the image needs %lld\n", dev,
			dev_size, (long long)ist.st_size);
		close(fd);
		return AGRI_EXIT_FAIL;
	}
	if (!yes) {
		char answer[16] = "";

		fprintf(stderr, "Everything on %s (%" PRIu64 " MiB) will be lost. Type yes: ", dev,
			dev_size >> 20);
		if (!fgets(answer, sizeof(answer), stdin) || strncmp(answer, "yes", 3)) {
			fprintf(stderr, "agrictl: not flashed\n");
			close(fd);
			return AGRI_EXIT_FAIL;
		}
	}
	rc = write_and_verify(image, dev, fd, (uint64_t)ist.st_size, hex);
	if (rc == 0 && station)
		rc = find_data_partition(dev, fd, part, sizeof(part));
	close(fd);
	if (rc == 0 && station)
		rc = write_station(part, station, from);
	if (rc == 0)
		fprintf(stderr, "%s: flashed and verified%s%s\n", dev, station ? " for station " : "",
			station ? station : "");
	return rc;
}
