/*
 * Memory shared by the master and every worker of one host: an anonymous
 * shared mapping made by the master before its first fork, so workers
 * started later (after a crash or a reload) see the same counters.
 * Everything in it is updated with atomic builtins and no locks, so a
 * worker killed at any instant cannot wedge the others; nothing in it
 * points anywhere.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "extern.h"

struct shm *shm;

void
shm_init(void)
{
	void *p;

	if (shm != NULL)
		return;
	p = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	         -1, 0);
	if (p == MAP_FAILED) {
		perror("assay-api: mmap of the shared counters");
		exit(1);
	}
	shm = p; /* zero-filled by the kernel */
}
