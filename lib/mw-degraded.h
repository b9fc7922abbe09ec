/* mw-degraded.h - a daemon serving from a fallback says so: one log line when it enters the
   state and one when it leaves it, the mailwarden_degraded gauge, and the records that
   mailwardenctl doctor reads back (issue 17). The components are listed in mw-degraded.def. */
#ifndef MW_DEGRADED_H
#define MW_DEGRADED_H

#include "mw-util.h"

enum mw_degraded_id {
#define MW_DEGRADED(id, name, fallback, missing, fix) MW_DEGRADED_##id,
#include "mw-degraded.def"
#undef MW_DEGRADED
	MW_DEGRADED_COUNT_
};

#define MW_DEGRADED_REASON_MAX 48  /* bytes of a reason word ([a-z0-9_]) */
#define MW_DEGRADED_DETAIL_MAX 400 /* bytes of the detail text kept for the log and doctor */

/* One component's state as the gauge and doctor show it. */
struct mw_degraded_state {
	char component[32];
	bool degraded;
	char reason[MW_DEGRADED_REASON_MAX + 1]; /* a word from the code: "connect_failed" */
	int64_t since;                           /* mw_now() when it entered the state; 0 if not */
};

/* Moves the table into shared memory (a robust process-shared mutex), keeping what it holds:
   call it before forking workers that must share one state. -1 with the reason. */
int mw_degraded_share(mw_error *error_r);
/* This process has the component: the gauge shows it (0 until it degrades). */
void mw_degraded_watch(enum mw_degraded_id id);
/* The component serves from its fallback. Logs "event=degraded component=NAME reason=REASON
   fallback=... detail=DETAIL" (warning) only when it was healthy until now; true then. reason
   is a word of the code ([a-z0-9_], else "unknown"); detail is any text (escaped for the log).
   Thread-safe. */
bool mw_degraded_enter(enum mw_degraded_id id, const char *reason, const char *detail);
/* The component works again: logs "event=recovered component=NAME after_secs=N detail=..."
   (info) only when it was degraded; true then. Thread-safe. */
bool mw_degraded_leave(enum mw_degraded_id id, const char *detail);
/* The state of one component (watched or not). */
void mw_degraded_get(enum mw_degraded_id id, struct mw_degraded_state *state_r);
/* The name of a component, and the component of a name (-1 when unknown). */
const char *mw_degraded_name(enum mw_degraded_id id);
int mw_degraded_lookup(const char *name);

/* The gauges of the watched components in the Prometheus text format, appended to out
   (lib/mw-metrics.c renders them after its counters):
     mailwarden_degraded{component="NAME"} 0|1
     mailwarden_degraded_since_seconds{component="NAME",reason="REASON"} EPOCH  (degraded only) */
void mw_degraded_render(mw_str *out);
/* The reader of what mw_degraded_render wrote, inside a whole metrics text: the states of the
   components found (at most max; *n_r of them). Other metrics are skipped. -1 with the reason
   when a mailwarden_degraded line does not parse (an unknown component, a value not 0/1, a
   since line without its gauge or twice). */
int mw_degraded_parse(const char *text, size_t len, struct mw_degraded_state *states, size_t max,
                      size_t *n_r, mw_error *error_r);
/* What doctor prints for a degraded component: "FALLBACK: MISSING unreachable since
   2026-12-07 12:00:00 UTC (reason REASON) (fix: ...)". */
void mw_degraded_describe(const struct mw_degraded_state *s, char *buf, size_t size);

#endif
