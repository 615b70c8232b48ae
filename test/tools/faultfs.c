/*
 * faultfs: a FUSE 3 file system that exposes one read-only file, /disc.img, backed by a host
 * file, and injects real kernel I/O errors and delays into reads of it. Tests put a loop block
 * device on top of /disc.img so the imaging engine sees EIO exactly as from a failing drive.
 *
 * Usage: faultfs -o backing=FILE,control=FILE[,status=FILE][,readlog=FILE] [-f] [-s] MOUNTPOINT
 *
 * The control file (on the host, outside the mount) is re-read whenever its identity or mtime
 * changes, checked at every read, so faults change without remounting. One directive a line:
 *   bad START END     reads overlapping bytes [START, END) fail with EIO as a whole
 *   delay_ms N        sleep N milliseconds before serving each read
 *   delay_us N        the same in microseconds
 *   hang 1            hold every read until the control file says `hang 0` (or drops the line):
 *                     a drive that stops answering; the daemon re-reads the control file
 *                     every 10 ms while it holds a read
 *   rate_bps N        besides any delay, take LENGTH / N seconds to serve each read of LENGTH
 *                     bytes, failed ones included: a drive that reads N bytes per second
 *   # comment
 * An empty control file means no faults.
 *
 * The optional status file is rewritten (atomically, via rename) after every read and every
 * control reload, so a test can prove which configuration the daemon actually applied:
 *   generation G / delay_us N / rate_bps N / hang 0|1 / reads N / failed_reads N / delayed_reads N /
 *   read_bytes N (bytes asked for by every read, failed ones included) / held_reads N / holding 0|1 /
 *   bad START END ...
 * held_reads counts the reads the hang held (the one being held included); holding is 1 while one is.
 *
 * The optional read log gets one line per read, appended as it is served: OFFSET LENGTH RESULT,
 * RESULT being the bytes served or -errno. It shows exactly which sectors a program read, and
 * how often, as a drive would see them.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMAGE_PATH "/disc.img"
#define IMAGE_NAME "disc.img"

struct byte_range {
	uint64_t start;
	uint64_t end;
};

struct fault_config {
	struct byte_range *bad;
	size_t bad_count;
	uint64_t delay_us;
	int hang;
	uint64_t rate_bps;
};

struct options {
	const char *backing;
	const char *control;
	const char *status;
	const char *readlog;
};

static struct options opts;
static int backing_fd = -1;
static struct fault_config config;
static uint64_t generation;
static uint64_t reads, failed_reads, delayed_reads, held_reads, read_bytes;
static int holding;
static FILE *readlog;

/* Identity of the control file version last applied; a rename-replaced file has a new inode. */
static struct {
	int known;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
} applied;

#define OPTION(t, p) { t, offsetof(struct options, p), 1 }
static const struct fuse_opt option_spec[] = {
	OPTION("backing=%s", backing),
	OPTION("control=%s", control),
	OPTION("status=%s", status),
	OPTION("readlog=%s", readlog),
	FUSE_OPT_END
};

static int parse_u64(const char *text, uint64_t *out)
{
	char *end;
	if (*text < '0' || *text > '9')
		return -1;
	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = value;
	return 0;
}

static void free_config(struct fault_config *c)
{
	free(c->bad);
	c->bad = NULL;
	c->bad_count = 0;
	c->delay_us = 0;
	c->hang = 0;
	c->rate_bps = 0;
}

/* Parses the whole control file into *out; on any error *out is left empty and -1 returned. */
static int parse_control(FILE *file, struct fault_config *out)
{
	char line[512];
	unsigned line_no = 0;
	size_t capacity = 0;

	memset(out, 0, sizeof(*out));
	while (fgets(line, sizeof(line), file) != NULL) {
		line_no++;
		char *save = NULL;
		char *directive = strtok_r(line, " \t\r\n", &save);
		if (directive == NULL || directive[0] == '#')
			continue;
		char *a = strtok_r(NULL, " \t\r\n", &save);
		char *b = strtok_r(NULL, " \t\r\n", &save);
		char *extra = strtok_r(NULL, " \t\r\n", &save);
		uint64_t x, y;

		if (strcmp(directive, "bad") == 0 && a && b && !extra &&
		    parse_u64(a, &x) == 0 && parse_u64(b, &y) == 0 && x < y) {
			if (out->bad_count == capacity) {
				capacity = capacity ? capacity * 2 : 8;
				struct byte_range *grown = realloc(out->bad, capacity * sizeof(*grown));
				if (grown == NULL)
					goto fail;
				out->bad = grown;
			}
			out->bad[out->bad_count].start = x;
			out->bad[out->bad_count].end = y;
			out->bad_count++;
		} else if (strcmp(directive, "delay_ms") == 0 && a && !b && parse_u64(a, &x) == 0) {
			out->delay_us = x * 1000;
		} else if (strcmp(directive, "delay_us") == 0 && a && !b && parse_u64(a, &x) == 0) {
			out->delay_us = x;
		} else if (strcmp(directive, "hang") == 0 && a && !b && parse_u64(a, &x) == 0 && x <= 1) {
			out->hang = (int)x;
		} else if (strcmp(directive, "rate_bps") == 0 && a && !b && parse_u64(a, &x) == 0 && x > 0) {
			out->rate_bps = x;
		} else {
			fprintf(stderr, "faultfs: %s:%u: invalid directive\n", opts.control, line_no);
			goto fail;
		}
	}
	if (ferror(file))
		goto fail;
	return 0;
fail:
	free_config(out);
	return -1;
}

static void write_status(void)
{
	if (opts.status == NULL)
		return;
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", opts.status) >= (int)sizeof(tmp))
		return;
	FILE *file = fopen(tmp, "w");
	if (file == NULL) {
		fprintf(stderr, "faultfs: cannot write %s: %s\n", tmp, strerror(errno));
		return;
	}
	fprintf(file, "generation %" PRIu64 "\ndelay_us %" PRIu64 "\nrate_bps %" PRIu64 "\nhang %d\nreads %" PRIu64
		"\nfailed_reads %" PRIu64 "\ndelayed_reads %" PRIu64 "\nread_bytes %" PRIu64 "\nheld_reads %" PRIu64 "\nholding %d\n",
		generation, config.delay_us, config.rate_bps, config.hang, reads, failed_reads, delayed_reads, read_bytes, held_reads, holding);
	for (size_t i = 0; i < config.bad_count; i++)
		fprintf(file, "bad %" PRIu64 " %" PRIu64 "\n", config.bad[i].start, config.bad[i].end);
	if (fclose(file) != 0 || rename(tmp, opts.status) != 0)
		fprintf(stderr, "faultfs: cannot write %s: %s\n", opts.status, strerror(errno));
}

/*
 * Reloads the control file if it changed since it was last applied. A file that cannot be
 * parsed makes every read fail: a test with a typo in its faults must not silently pass.
 */
static void refresh_config(void)
{
	struct stat st;
	if (stat(opts.control, &st) != 0) {
		fprintf(stderr, "faultfs: cannot stat %s: %s\n", opts.control, strerror(errno));
		return;
	}
	if (applied.known && applied.dev == st.st_dev && applied.ino == st.st_ino &&
	    applied.size == st.st_size && applied.mtime.tv_sec == st.st_mtim.tv_sec &&
	    applied.mtime.tv_nsec == st.st_mtim.tv_nsec)
		return;

	FILE *file = fopen(opts.control, "r");
	if (file == NULL) {
		fprintf(stderr, "faultfs: cannot open %s: %s\n", opts.control, strerror(errno));
		return;
	}
	struct fault_config next;
	int ok = parse_control(file, &next) == 0;
	fclose(file);

	free_config(&config);
	if (ok) {
		config = next;
	} else {
		config.bad = malloc(sizeof(*config.bad));
		if (config.bad != NULL) {
			config.bad[0].start = 0;
			config.bad[0].end = UINT64_MAX;
			config.bad_count = 1;
		}
	}
	applied.known = 1;
	applied.dev = st.st_dev;
	applied.ino = st.st_ino;
	applied.size = st.st_size;
	applied.mtime = st.st_mtim;
	generation++;
	write_status();
}

static int overlaps_bad_range(uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < config.bad_count; i++)
		if (start < config.bad[i].end && end > config.bad[i].start)
			return 1;
	return 0;
}

static void sleep_us(uint64_t us)
{
	struct timespec left = { .tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000 };
	while (nanosleep(&left, &left) != 0 && errno == EINTR)
		;
}

static int backing_size(off_t *size)
{
	struct stat st;
	if (fstat(backing_fd, &st) != 0)
		return -errno;
	*size = st.st_size;
	return 0;
}

static int ffs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, IMAGE_PATH) != 0)
		return -ENOENT;
	off_t size;
	int rc = backing_size(&size);
	if (rc != 0)
		return rc;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = size;
	st->st_blksize = 2048;
	st->st_blocks = (size + 511) / 512;
	return 0;
}

static int ffs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
		       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)offset;
	(void)fi;
	(void)flags;
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	filler(buf, IMAGE_NAME, NULL, 0, 0);
	return 0;
}

static int ffs_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, IMAGE_PATH) != 0)
		return -ENOENT;
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	/* No page cache and no read-ahead: every read the caller makes reaches ffs_read as is. */
	fi->direct_io = 1;
	fi->keep_cache = 0;
	return 0;
}

/* Counts, logs and reports one served read; `result` is its byte count or -errno. */
static int finish_read(off_t offset, size_t size, int result)
{
	if (result < 0)
		failed_reads++;
	if (readlog != NULL) {
		fprintf(readlog, "%" PRId64 " %zu %d\n", (int64_t)offset, size, result);
		fflush(readlog);
	}
	write_status();
	return result;
}

static int ffs_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi)
{
	(void)fi;
	if (strcmp(path, IMAGE_PATH) != 0)
		return -ENOENT;
	refresh_config();
	reads++;
	read_bytes += size;
	if (config.hang) {
		/* The daemon runs single-threaded (-s): every other request waits behind this one, as
		 * everything waits behind a drive that stopped answering. */
		held_reads++;
		holding = 1;
		write_status();
		while (config.hang) {
			sleep_us(10000);
			refresh_config();
		}
		holding = 0;
	}
	uint64_t wait_us = config.delay_us;
	if (config.rate_bps > 0)
		wait_us += (uint64_t)size * 1000000 / config.rate_bps;
	if (wait_us > 0) {
		delayed_reads++;
		sleep_us(wait_us);
	}

	off_t file_size;
	int rc = backing_size(&file_size);
	if (rc != 0)
		return finish_read(offset, size, rc);
	if (offset >= file_size)
		return finish_read(offset, size, 0);
	size_t length = size;
	if ((uint64_t)(file_size - offset) < length)
		length = (size_t)(file_size - offset);
	if (overlaps_bad_range((uint64_t)offset, (uint64_t)offset + length))
		return finish_read(offset, size, -EIO);

	size_t done = 0;
	while (done < length) {
		ssize_t n = pread(backing_fd, buf + done, length - done, offset + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return finish_read(offset, size, -errno);
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return finish_read(offset, size, (int)done);
}

static const struct fuse_operations operations = {
	.getattr = ffs_getattr,
	.readdir = ffs_readdir,
	.open = ffs_open,
	.read = ffs_read,
};

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	if (fuse_opt_parse(&args, &opts, option_spec, NULL) == -1)
		return 2;
	if (opts.backing == NULL || opts.control == NULL) {
		fprintf(stderr, "usage: %s -o backing=FILE,control=FILE[,status=FILE][,readlog=FILE] [-f] [-s] MOUNTPOINT\n",
			argv[0]);
		fuse_opt_free_args(&args);
		return 2;
	}
	backing_fd = open(opts.backing, O_RDONLY | O_CLOEXEC);
	if (backing_fd < 0) {
		fprintf(stderr, "faultfs: cannot open %s: %s\n", opts.backing, strerror(errno));
		fuse_opt_free_args(&args);
		return 1;
	}
	if (opts.readlog != NULL) {
		readlog = fopen(opts.readlog, "a");
		if (readlog == NULL) {
			fprintf(stderr, "faultfs: cannot open %s: %s\n", opts.readlog, strerror(errno));
			close(backing_fd);
			fuse_opt_free_args(&args);
			return 1;
		}
	}
	refresh_config();
	int rc = fuse_main(args.argc, args.argv, &operations, NULL);
	if (readlog != NULL)
		fclose(readlog);
	fuse_opt_free_args(&args);
	free_config(&config);
	close(backing_fd);
	return rc;
}
