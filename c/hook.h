/* hook.h: fault-injection points inside the library, for the command's
 * SHMPC_FAULT (the e2e suite stops a process at one of them and kills it
 * there). Not part of the installed API; unset (NULL, the default) a point
 * costs one load. The command sets them before it opens the ring. */
#ifndef SHMPC_HOOK_H
#define SHMPC_HOOK_H

/* Called by shmpc_end after it marked the end of the stream and rang the
 * consumer, before it waits for the drain. */
extern void (*shmpc_hook_producer_ended)(const char *ring);

/* Called by shmpc_end after the consumer drained the stream, before the
 * ring is removed. */
extern void (*shmpc_hook_producer_drained)(const char *ring);

#endif /* SHMPC_HOOK_H */
