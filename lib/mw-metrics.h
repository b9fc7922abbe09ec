/* mw-metrics.h - process counters in the Prometheus text format (version 0.0.4).
 *
 * One table per process (or, with mw_metrics_init(true) before forking, one table in shared
 * memory for a prefork pool: every worker counts into it). Metrics are declared once in
 * lib/mw-metrics.def; a series is a metric with one value per label. Increments are atomic;
 * the series table is guarded by a robust process-shared mutex (a worker that dies holding it
 * does not stop the others). At most MW_METRICS_SERIES_MAX series: more are counted in
 * mailwarden_metrics_dropped_total instead of being lost silently.
 */
#ifndef MW_METRICS_H
#define MW_METRICS_H

#include "mw-util.h"

#define MW_METRICS_SERIES_MAX 512
#define MW_METRICS_LABELS_MAX 256 /* bytes of one series' rendered label set */

enum mw_metric_id {
#define MW_METRIC(id, name, help, labels) MWM_##id,
#include "mw-metrics.def"
#undef MW_METRIC
	MWM_COUNT_
};

/* Sets up the table (shared: in MAP_SHARED memory, for processes forked after this). Calling
   it again keeps the table. -1 with a reason. */
int mw_metrics_init(bool shared, mw_error *error_r);
/* Adds 1 to the series of id with the label values given (as many as the metric has labels).
   Does nothing before mw_metrics_init. */
void mw_metrics_inc(enum mw_metric_id id, ...);
/* The whole table in the text format, appended to out. */
void mw_metrics_render(mw_str *out);
/* Writes the text format to path atomically (a temporary file in the same directory, then
   rename; mode 0644): node_exporter's textfile collector reads it. */
int mw_metrics_write_file(const char *path, mw_error *error_r);

#endif
