/* mw-spam-eval.c - cross-validation driver for bench/spam-eval/run: trains the classifier
 * (lib/mw-classify, through a fresh SQLite store per fold, exactly as mailwardenctl learn
 * does) on k-1 folds and scores the held-out fold with each method, and with the whole
 * scorer as the milter runs it (lib/mw-spam: header heuristics + the classifier's bands,
 * default weights; no DNS lists, no SPF/DKIM/DMARC, no client IP or HELO: the corpus has
 * only the messages).
 *
 * Usage: mw-spam-eval [--folds K] [--seed N] [--rate R] [--ham-rate R] [--steps N] [--margin M]
 *                     [--normalize] [--no-bigrams] TMPDIR LIST
 * LIST: one "spam PATH" or "ham PATH" per line. Methods: robinson, logistic, combined. Folds are
 * stratified (each label shuffled with the seed, dealt round-robin); the training order is shuffled
 * with the seed too. Output (stdout): "score FOLD METHOD LABEL P" per held-out message and method,
 * "cpu METHOD SECONDS MESSAGES" (process CPU time spent in mw_classifier_score_with),
 * "train FOLD SECONDS MESSAGES" (wall time of the learn batch), "whole FOLD LABEL SCORE TESTS"
 * per held-out message (SCORE in hundredths, TESTS the fired tests or "-"),
 * "cpu whole SECONDS MESSAGES" (process CPU in mw_spam_score, classifier included),
 * "fold FOLD LABEL PATH" per held-out message with --folds-out (for the SpamAssassin peer).
 *
 * --users N (per-user models, [classifier] per_user): every message is given to one of N
 * simulated users (seeded); each fold's training messages also go into their user's own
 * model (scope user+1, through a learner under the user's digest, as the Dovecot plugin
 * learns), and each held-out message is scored for its user with the global model and the
 * user's mixed (mw_classifier_score_user) at user_weight 0, 25, 50, 75 and 100 %:
 * "user FOLD WEIGHT KIND LABEL P". KIND "agree": the user labels as the corpus does;
 * with --flip-user, user 0 ("flip") wants hard ham (commercial mail: paths with "hard-ham")
 * filtered: its hard ham is spam in its own training and in how its test messages are
 * judged, while the global model learns the corpus labels (user_learn_global = no).
 * --max-tokens N: after each fold's training, token expiry by size down to N rows (the
 * least useful first, as [classifier] max_tokens), then scoring: "expired FOLD N BEFORE".
 * --explain N: for every held-out ham the whole scorer puts at or over spam_score (a false
 * positive), "explain FOLD PATH" and its N strongest known tokens (mw_classifier_explain:
 * by |logistic weight|) as "clue FOLD NSPAM NHAM F WEIGHT TEXT" (F: Robinson's f(w)).
 */
#include "mw-build.h"
#include "mw-classify.h"
#include "mw-config.h"
#include "mw-spam.h"
#include "mw-store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct item {
	bool spam;
	char *path;
	char *data;
	size_t len;
	unsigned fold;
	unsigned user; /* --users */
};

static uint64_t rng_state;

/* rnd - xorshift64*, deterministic from the seed */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* shuffle - Fisher-Yates over an array of indexes */
static void shuffle(size_t *v, size_t n)
{
	size_t i;
	for (i = n; i > 1; i--) {
		size_t j = (size_t)(rnd() % i), t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* read_all - a whole file into memory */
static char *read_all(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, len = 0, n;
	if (f == NULL)
		return NULL;
	do {
		if (len + 65536 > cap) {
			cap = cap == 0 ? 131072 : cap * 2;
			buf = mw_realloc(buf, cap);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	*len_r = len;
	return buf;
}

/* whole_classify - the milter's classifier callback: the configured method */
static int whole_classify(void *ctx, const char *msg, size_t len, double *p_r, mw_error *error_r)
{
	return mw_classifier_score(ctx, msg, len, p_r, error_r);
}

/* cpu_now - process CPU seconds */
static double cpu_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* wall_now - monotonic seconds */
static double wall_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* user_label - how the item's user labels it (the flip user wants hard ham filtered) */
static bool user_label(const struct item *it, bool flip_user)
{
	return it->spam || (flip_user && it->user == 0 && strstr(it->path, "hard-ham") != NULL);
}

/* explain_message - --explain: a false positive's strongest known tokens */
static void explain_message(mw_classifier *c, unsigned fold, const struct item *it, unsigned max)
{
	struct mw_classifier_clue *clues = mw_calloc(max, sizeof(*clues));
	mw_error err = {""};
	size_t k, n;
	printf("explain %u %s\n", fold, it->path);
	if (mw_classifier_explain(c, it->data, it->len, clues, max, &n, &err) < 0)
		fprintf(stderr, "mw-spam-eval: explain %s: %s\n", it->path, err.msg);
	else
		for (k = 0; k < n; k++)
			printf("clue %u %lld %lld %.3f %.3f %s\n", fold, (long long)clues[k].nspam,
			       (long long)clues[k].nham, clues[k].prob, clues[k].weight,
			       clues[k].text);
	free(clues);
}

/* per_user_fold - --users: train each user's model on its training messages, score the
   held-out fold for each message's user at several user weights */
static int per_user_fold(mw_store *store, mw_classifier *g, const struct mw_classifier_settings *gs,
                         const struct item *items, const size_t *order, size_t k, unsigned fold,
                         size_t n, unsigned users, bool flip_user)
{
	static const unsigned weights[] = {0, 25, 50, 75, 100};
	struct mw_classifier_settings set = *gs, us;
	mw_classifier *learner, **um;
	mw_error err = {""};
	size_t i;
	unsigned u, w;
	if (mw_classifier_open_learner(store, &learner, &err) < 0 ||
	    mw_classifier_batch_begin(learner, &err) < 0) {
		fprintf(stderr, "mw-spam-eval: %s\n", err.msg);
		return -1;
	}
	for (i = 0; i < k; i++) {
		const struct item *it = &items[order[i]];
		unsigned char dg[MW_SPAM_DIGEST_LEN];
		struct mw_tokens t;
		char who[32];
		(void)snprintf(who, sizeof(who), "user%u", it->user);
		mw_tokens_init(&t, false);
		if (mw_classifier_prepare(set.token_flags, it->data, it->len, who, &t, dg, &err) <
		        0 ||
		    mw_classifier_learn_tokens_in(learner, (int64_t)it->user + 1, t.hash, t.count,
		                                  dg, user_label(it, flip_user), &err) < 0)
			fprintf(stderr, "mw-spam-eval: user learn %s: %s\n", it->path, err.msg);
		mw_tokens_free(&t);
	}
	if (mw_classifier_batch_end(learner, true, &err) < 0) {
		fprintf(stderr, "mw-spam-eval: %s\n", err.msg);
		return -1;
	}
	mw_classifier_close(&learner);
	um = mw_calloc(users, sizeof(*um));
	set.min_spam = set.min_ham = 20;
	mw_classifier_user_settings(&set, &us);
	for (u = 0; u < users; u++) {
		if (mw_classifier_open_scope(store, (int64_t)u + 1, &um[u], &err) < 0) {
			fprintf(stderr, "mw-spam-eval: %s\n", err.msg);
			return -1;
		}
		mw_classifier_configure(um[u], &us);
	}
	for (i = 0; i < n; i++) {
		const struct item *it = &items[i];
		if (it->fold != fold)
			continue;
		for (w = 0; w < MW_N_ELEMENTS(weights); w++) {
			double p;
			set.user_weight = weights[w] / 100.0;
			mw_classifier_configure(g, &set);
			if (mw_classifier_score_user(g, um[it->user], it->data, it->len, &p, NULL,
			                             &err) != 0)
				p = 0.5;
			printf("user %u %u %s %s %.9f\n", fold, weights[w],
			       flip_user && it->user == 0 ? "flip" : "agree",
			       user_label(it, flip_user) ? "spam" : "ham", p);
		}
	}
	set = *gs;
	mw_classifier_configure(g, &set);
	for (u = 0; u < users; u++)
		mw_classifier_close(&um[u]);
	free(um);
	return 0;
}

int main(int argc, char **argv)
{
	struct mw_classifier_settings set;
	struct item *items = NULL;
	size_t n = 0, cap = 0, i, *order;
	unsigned folds = 5, fold, seed = 42;
	double cpu[3] = {0, 0, 0}, cpu_whole = 0;
	unsigned long scored[3] = {0, 0, 0}, scored_whole = 0;
	struct mw_spam_settings spam;
	bool folds_out = false, flip_user = false;
	unsigned users = 0, explain = 0;
	const char *tmpdir, *list;
	char line[4096];
	FILE *f;
	int a = 1;
	mw_classifier_settings_default(&set);
	set.min_spam = set.min_ham = 1;
	for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
		if (strcmp(argv[a], "--folds") == 0 && a + 1 < argc)
			folds = (unsigned)atoi(argv[++a]);
		else if (strcmp(argv[a], "--seed") == 0 && a + 1 < argc)
			seed = (unsigned)atoi(argv[++a]);
		else if (strcmp(argv[a], "--rate") == 0 && a + 1 < argc)
			set.rate = atof(argv[++a]);
		else if (strcmp(argv[a], "--ham-rate") == 0 && a + 1 < argc)
			set.ham_rate = atof(argv[++a]);
		else if (strcmp(argv[a], "--steps") == 0 && a + 1 < argc)
			set.max_steps = (unsigned)atoi(argv[++a]);
		else if (strcmp(argv[a], "--margin") == 0 && a + 1 < argc)
			set.margin = atof(argv[++a]);
		else if (strcmp(argv[a], "--normalize") == 0)
			set.normalize = true;
		else if (strcmp(argv[a], "--no-normalize") == 0)
			set.normalize = false;
		else if (strcmp(argv[a], "--users") == 0 && a + 1 < argc)
			users = (unsigned)atoi(argv[++a]);
		else if (strcmp(argv[a], "--max-tokens") == 0 && a + 1 < argc)
			set.max_tokens = atoll(argv[++a]);
		else if (strcmp(argv[a], "--flip-user") == 0)
			flip_user = true;
		else if (strcmp(argv[a], "--explain") == 0 && a + 1 < argc)
			explain = (unsigned)atoi(argv[++a]);
		else if (strcmp(argv[a], "--folds-out") == 0)
			folds_out = true;
		else if (strcmp(argv[a], "--no-bigrams") == 0)
			set.token_flags &= ~(unsigned)MW_TOK_BIGRAMS;
		else {
			fprintf(stderr, "mw-spam-eval: unknown option %s\n", argv[a]);
			return 2;
		}
	}
	if (argc - a != 2 || folds < 2) {
		fprintf(stderr, "usage: mw-spam-eval [options] TMPDIR LIST\n");
		return 2;
	}
	tmpdir = argv[a];
	list = argv[a + 1];
	{
		/* the [spam] defaults of the key table, as an untouched install scores */
		mw_error err = {""};
		mw_config *cfg = mw_config_load_string("", 0, "defaults", &err);
		if (cfg == NULL || mw_spam_settings_from_config(cfg, &spam, &err) < 0) {
			fprintf(stderr, "mw-spam-eval: [spam] defaults: %s\n", err.msg);
			return 1;
		}
		mw_config_unref(&cfg);
	}
	rng_state = 0x9E3779B97F4A7C15ULL ^ seed;
	f = fopen(list, "r");
	if (f == NULL) {
		fprintf(stderr, "mw-spam-eval: %s: %s\n", list, strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *sp = strchr(line, ' ');
		line[strcspn(line, "\n")] = '\0';
		if (sp == NULL)
			continue;
		*sp = '\0';
		if (n == cap) {
			cap = cap == 0 ? 1024 : cap * 2;
			items = mw_realloc(items, cap * sizeof(*items));
		}
		items[n].spam = strcmp(line, "spam") == 0;
		items[n].path = mw_strdup(sp + 1);
		items[n].data = read_all(sp + 1, &items[n].len);
		if (items[n].data == NULL) {
			fprintf(stderr, "mw-spam-eval: %s: %s\n", sp + 1, strerror(errno));
			return 1;
		}
		n++;
	}
	fclose(f);
	/* stratified folds: each label shuffled and dealt round-robin */
	order = mw_calloc(n, sizeof(*order));
	{
		int lab;
		for (lab = 0; lab < 2; lab++) {
			size_t k = 0;
			for (i = 0; i < n; i++)
				if (items[i].spam == (lab == 1))
					order[k++] = i;
			shuffle(order, k);
			for (i = 0; i < k; i++)
				items[order[i]].fold = (unsigned)(i % folds);
		}
		for (i = 0; users > 0 && i < n; i++)
			items[i].user = (unsigned)(rnd() % users);
	}
	if (folds_out)
		for (i = 0; i < n; i++)
			printf("fold %u %s %s\n", items[i].fold, items[i].spam ? "spam" : "ham",
			       items[i].path);
	for (fold = 0; fold < folds; fold++) {
		mw_error err = {""};
		mw_classifier *c;
		mw_store *store;
		char url[4200];
		size_t k = 0;
		double t0;
		snprintf(url, sizeof(url), "sqlite:%s/fold%u.db", tmpdir, fold);
		store = mw_store_open(url, 5000, &err);
		if (store == NULL || mw_store_migrate(store, &err) != MW_STORE_OK ||
		    mw_classifier_open(store, &c, &err) < 0) {
			fprintf(stderr, "mw-spam-eval: %s\n", err.msg);
			return 1;
		}
		mw_classifier_configure(c, &set);
		for (i = 0; i < n; i++)
			if (items[i].fold != fold)
				order[k++] = i;
		shuffle(order, k);
		t0 = wall_now();
		if (mw_classifier_batch_begin(c, &err) < 0) {
			fprintf(stderr, "mw-spam-eval: %s\n", err.msg);
			return 1;
		}
		for (i = 0; i < k; i++) {
			struct item *it = &items[order[i]];
			if (mw_classifier_learn(c, it->data, it->len, it->spam, NULL, &err) < 0)
				fprintf(stderr, "mw-spam-eval: learn %s: %s\n", it->path, err.msg);
		}
		if (mw_classifier_batch_end(c, true, &err) < 0) {
			fprintf(stderr, "mw-spam-eval: %s\n", err.msg);
			return 1;
		}
		printf("train %u %.3f %zu\n", fold, wall_now() - t0, k);
		if (set.max_tokens > 0) {
			/* token expiry by size before scoring: what the bound costs in accuracy */
			struct mw_spam_expire_result x;
			if (mw_classifier_expire(store, 0, &set, false, 0, &x, &err) < 0) {
				fprintf(stderr, "mw-spam-eval: expire: %s\n", err.msg);
				return 1;
			}
			printf("expired %u %lld %lld\n", fold, (long long)x.by_size,
			       (long long)x.tokens_before);
		}
		if (users > 0 &&
		    per_user_fold(store, c, &set, items, order, k, fold, n, users, flip_user) < 0)
			return 1;
		{
			/* untimed: the scorer's first refresh reloads every row learned above from
			   the store (its generation is behind its own learns), once per fold; a
			   milter loads its model at start, so this is not a per-message cost */
			double p;
			(void)mw_classifier_score(c, "Subject: warm-up\r\n\r\nx\r\n", 23, &p, &err);
		}
		for (i = 0; i < n; i++) {
			int m;
			if (items[i].fold != fold)
				continue;
			for (m = 0; m < 3; m++) {
				enum mw_classifier_method meth = m == 0   ? MW_CLASSIFIER_ROBINSON
				                                 : m == 1 ? MW_CLASSIFIER_LOGISTIC
				                                          : MW_CLASSIFIER_COMBINED;
				double p, c0 = cpu_now();
				int r = mw_classifier_score_with(c, meth, items[i].data,
				                                 items[i].len, &p, &err);
				cpu[m] += cpu_now() - c0;
				scored[m]++;
				if (r < 0) {
					fprintf(stderr, "mw-spam-eval: score %s: %s\n",
					        items[i].path, err.msg);
					p = 0.5;
				}
				printf("score %u %s %s %.9f\n", fold,
				       mw_classifier_method_name(meth),
				       items[i].spam ? "spam" : "ham", p);
			}
			{
				struct mw_spam_input in;
				struct mw_spam_result res;
				double c0 = cpu_now();
				memset(&in, 0, sizeof(in));
				in.msg = items[i].data;
				in.len = items[i].len;
				spam.classify = whole_classify;
				spam.classify_ctx = c;
				mw_spam_score(&spam, &in, &res);
				cpu_whole += cpu_now() - c0;
				scored_whole++;
				printf("whole %u %s %ld %s\n", fold, items[i].spam ? "spam" : "ham",
				       res.score, res.tests[0] != '\0' ? res.tests : "-");
				if (explain > 0 && !items[i].spam && res.score >= spam.required)
					explain_message(c, fold, &items[i], explain);
			}
		}
		mw_classifier_close(&c);
		mw_store_close(&store);
		snprintf(url, sizeof(url), "%s/fold%u.db", tmpdir, fold);
		(void)unlink(url);
		fflush(stdout);
	}
	printf("cpu robinson %.6f %lu\n", cpu[0], scored[0]);
	printf("cpu logistic %.6f %lu\n", cpu[1], scored[1]);
	printf("cpu combined %.6f %lu\n", cpu[2], scored[2]);
	printf("cpu whole %.6f %lu\n", cpu_whole, scored_whole);
	for (i = 0; i < n; i++) {
		free(items[i].path);
		free(items[i].data);
	}
	free(items);
	free(order);
	return 0;
}
