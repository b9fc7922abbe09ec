/* mw-classify.c - the statistical spam classifier (Robinson-Fisher and online logistic
 * regression over one token model).
 *
 * Public: see mw-classify.h.
 *
 * Design:
 *   - The store (migration 003) holds one row per token: (hash, nspam, nham, weight, gen),
 *     plus the learned message counts and a generation number bumped by every learn, and
 *     the digest and label of every learned message.
 *   - mw_classifier_open loads every row into an in-memory open-addressing hash table
 *     (24 bytes a token; ~0.7 load). Scoring never touches the store: it parses the
 *     message (mw-mime), tokenizes it (a set of 64-bit hashes) and looks each token up.
 *   - At most every refresh_ms, scoring reads the generation; when another process has
 *     learned, it reloads only the rows whose gen is newer (indexed), so a busy learner
 *     costs readers little.
 *   - Learning computes per-token deltas (counts, weight) and applies them to memory and
 *     to the store through upserts that add the deltas (never absolute values), so several
 *     processes learning at once never overwrite each other.
 *   - Robinson: f(w) = (s*x + n*p(w)) / (s + n), s = 0.2, x = 0.5, p(w) from the
 *     count ratios; tokens with |f - 0.5| < 0.1 ignored; the 20 strongest combined with
 *     Fisher's chi-square inverse: (1 + (1 - C(-2 ln prod(1-f))) - (1 - C(-2 ln prod f))) / 2.
 *   - Logistic: p = sigmoid(b + sum w_t) over the message's distinct tokens (binary
 *     features); learning takes gradient steps (w_t += rate * (y - p)) until the message
 *     is on the right side by the margin or max_steps were taken: "train until margin".
 *     Ham learns at 1.5 times the rate of spam (0.03 against 0.02): a false positive costs
 *     more than a missed spam, and the asymmetric rate measured better at the low-FPR end
 *     than any symmetric one (bench/README.md).
 *   - Combined (the default): the mean m of the two probabilities, sharpened to
 *     m^2 / (m^2 + (1-m)^2) (sigmoid of twice the log-odds: 0.5 stays 0.5, the order of
 *     messages stays), so that the point where at most 0.2 % of ham scores higher, ~0.59
 *     for the plain mean, sits at the whole scorer's BAYES_67 edge (bench/README.md).
 *   - A learner (mw_classifier_open_learner, the Dovecot plugin) holds no model: a learn
 *     opens a store transaction, reads the rows of the message's tokens and the bias
 *     inside it, computes the same deltas as above from them, applies them and commits.
 *     The learned-digest check and the update share that transaction, so two processes
 *     learning the same judgement at once count it once.
 *
 * Diagnostics: through error_r, prefixed with what failed ("parsing the message: ...",
 * "store: ...").
 */
#include "mw-build.h"
#include "mw-classify.h"

#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* s = 0.2 and the 20 strongest clues (SpamBayes: 0.45 and 150) measured best, alone and in
   combined (bench/README.md, 2026-12-07 "classifier accuracy"): with 150 clues the
   chi-square saturates to 0 or 1 on nearly every message and the mean with the logistic
   model only follows it */
#define ROBINSON_S            0.2
#define ROBINSON_X            0.5
#define ROBINSON_MIN_STRENGTH 0.1
#define ROBINSON_MAX_CLUES    20
#define BIAS_TOKEN            "\001bias"

struct entry {
	uint64_t hash; /* 0: empty */
	int32_t nspam, nham;
	float weight;
};

struct tokmap {
	struct entry *v;
	size_t cap, count; /* cap: power of two */
};

struct mw_classifier {
	mw_store *store;
	int64_t scope;
	struct mw_classifier_settings set;
	pthread_rwlock_t lock;
	struct tokmap map;
	int64_t nspam, nham, generation;
	uint64_t bias_hash;
	int64_t last_check_ms; /* mw_mono_ms */
	bool batch;
	bool learner; /* no model in memory: each learn reads its tokens' rows */
};

/* ---- the token table ---- */

/* map_slot - the slot of hash (found or where it would go) */
static size_t map_slot(const struct tokmap *m, uint64_t hash)
{
	size_t i = (size_t)(hash ^ (hash >> 31)) & (m->cap - 1);
	while (m->v[i].hash != 0 && m->v[i].hash != hash)
		i = (i + 1) & (m->cap - 1);
	return i;
}

/* map_find - the entry of hash, or NULL */
static const struct entry *map_find(const struct tokmap *m, uint64_t hash)
{
	const struct entry *e;
	if (m->cap == 0)
		return NULL;
	e = &m->v[map_slot(m, hash)];
	return e->hash == 0 ? NULL : e;
}

/* map_get - the entry of hash, created (zeroed) when absent */
static struct entry *map_get(struct tokmap *m, uint64_t hash)
{
	struct entry *e;
	if ((m->count + 1) * 10 > m->cap * 7) {
		struct tokmap bigger;
		size_t i;
		bigger.cap = m->cap == 0 ? 1024 : m->cap * 2;
		bigger.count = m->count;
		bigger.v = mw_calloc(bigger.cap, sizeof(*bigger.v));
		for (i = 0; i < m->cap; i++)
			if (m->v[i].hash != 0)
				bigger.v[map_slot(&bigger, m->v[i].hash)] = m->v[i];
		free(m->v);
		*m = bigger;
	}
	e = &m->v[map_slot(m, hash)];
	if (e->hash == 0) {
		e->hash = hash;
		m->count++;
	}
	return e;
}

/* clamp32 - an int64 count as an int32 (counts never get near the bound in practice) */
static int32_t clamp32(int64_t v)
{
	return v < 0 ? 0 : v > INT32_MAX ? INT32_MAX : (int32_t)v;
}

/* load_cb - one token row from the store into the table (absolute values) */
static void load_cb(void *ctx, const struct mw_spam_token *t)
{
	struct entry *e = map_get(ctx, t->hash);
	e->nspam = clamp32(t->nspam);
	e->nham = clamp32(t->nham);
	e->weight = (float)t->weight;
}

/* refresh - read the rows changed since our generation (all of them the first time) */
static int refresh(mw_classifier *c, mw_error *error_r)
{
	struct mw_spam_meta meta;
	int ret = mw_store_spam_meta_get(c->store, c->scope, &meta, error_r);
	if (ret != MW_STORE_OK) {
		mw_error_prefix(error_r, "store");
		return -1;
	}
	c->last_check_ms = mw_mono_ms();
	if (meta.generation == c->generation && c->map.cap != 0)
		return 0;
	if (meta.reset_gen > c->generation) {
		/* rows were expired since our load (or since the start of our own learns, which
		   leave our generation behind): a delta cannot say which, reload it all */
		free(c->map.v);
		memset(&c->map, 0, sizeof(c->map));
		c->generation = 0;
	}
	ret =
	    mw_store_spam_tokens_load(c->store, c->scope, c->generation, load_cb, &c->map, error_r);
	if (ret != MW_STORE_OK) {
		mw_error_prefix(error_r, "store");
		return -1;
	}
	c->nspam = meta.nspam;
	c->nham = meta.nham;
	c->generation = meta.generation;
	return 0;
}

/* ---- settings ---- */

/* mw_classifier_settings_default - the measured best (see bench/README.md) */
void mw_classifier_settings_default(struct mw_classifier_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->method = MW_CLASSIFIER_COMBINED;
	s->min_spam = 200;
	s->min_ham = 200;
	s->refresh_ms = 1000;
	s->rate = 0.02;
	s->ham_rate = 0.03;
	s->max_steps = 8;
	s->margin = 0.1;
	s->token_flags = MW_TOK_BIGRAMS;
	s->per_user = false;
	s->user_min_spam = 20;
	s->user_min_ham = 20;
	s->user_weight = 0.5;
	s->learn_global = true;
	s->expire_age = 0;
	s->max_tokens = 0;
	s->user_max_tokens = 0;
	s->expire_interval = 12 * 3600;
	s->expire_limit = 100000;
	s->clock = NULL;
}

/* mw_classifier_settings_from_config - the [classifier] keys */
void mw_classifier_settings_from_config(const mw_config *cfg, struct mw_classifier_settings *s)
{
	const char *m = mw_config_str(cfg, MWK_CLASSIFIER_METHOD);
	mw_classifier_settings_default(s);
	s->method = strcmp(m, "robinson") == 0   ? MW_CLASSIFIER_ROBINSON
	            : strcmp(m, "logistic") == 0 ? MW_CLASSIFIER_LOGISTIC
	                                         : MW_CLASSIFIER_COMBINED;
	s->min_spam = (unsigned)mw_config_int(cfg, MWK_CLASSIFIER_MIN_SPAM);
	s->min_ham = (unsigned)mw_config_int(cfg, MWK_CLASSIFIER_MIN_HAM);
	s->refresh_ms = (unsigned)mw_config_int(cfg, MWK_CLASSIFIER_REFRESH) * 1000;
	s->per_user = mw_config_bool(cfg, MWK_CLASSIFIER_PER_USER);
	s->user_min_spam = (unsigned)mw_config_int(cfg, MWK_CLASSIFIER_USER_MIN_SPAM);
	s->user_min_ham = (unsigned)mw_config_int(cfg, MWK_CLASSIFIER_USER_MIN_HAM);
	s->user_weight = (double)mw_config_int(cfg, MWK_CLASSIFIER_USER_WEIGHT) / 100.0;
	s->learn_global = mw_config_bool(cfg, MWK_CLASSIFIER_USER_LEARN_GLOBAL);
	s->expire_age = mw_config_int(cfg, MWK_CLASSIFIER_EXPIRE_AGE);
	s->max_tokens = mw_config_int(cfg, MWK_CLASSIFIER_MAX_TOKENS);
	s->user_max_tokens = mw_config_int(cfg, MWK_CLASSIFIER_USER_MAX_TOKENS);
	s->expire_interval = mw_config_int(cfg, MWK_CLASSIFIER_EXPIRE_INTERVAL);
	s->expire_limit = mw_config_int(cfg, MWK_CLASSIFIER_EXPIRE_LIMIT);
}

/* mw_classifier_user_settings - s as a user's model is judged: the per-user minimum */
void mw_classifier_user_settings(const struct mw_classifier_settings *global,
                                 struct mw_classifier_settings *user_r)
{
	*user_r = *global;
	user_r->min_spam = global->user_min_spam;
	user_r->min_ham = global->user_min_ham;
}

/* now_of - the settings' clock (tests) or mw_now */
static int64_t now_of(const struct mw_classifier_settings *s)
{
	return s->clock != NULL ? s->clock() : mw_now();
}

/* mw_classifier_method_name - "combined", "logistic" or "robinson" */
const char *mw_classifier_method_name(enum mw_classifier_method m)
{
	return m == MW_CLASSIFIER_ROBINSON   ? "robinson"
	       : m == MW_CLASSIFIER_LOGISTIC ? "logistic"
	                                     : "combined";
}

/* ---- open / close ---- */

/* classifier_new - an empty classifier on STORE (LEARNER: one that never loads the model) */
static mw_classifier *classifier_new(mw_store *store, bool learner, mw_error *error_r)
{
	mw_classifier *c;
	if (sodium_init() < 0) {
		mw_error_set(error_r, "libsodium failed to initialise");
		return NULL;
	}
	c = mw_calloc(1, sizeof(*c));
	c->store = store;
	c->scope = 0;
	c->learner = learner;
	mw_classifier_settings_default(&c->set);
	c->bias_hash = mw_token_hash(BIAS_TOKEN, strlen(BIAS_TOKEN));
	if (pthread_rwlock_init(&c->lock, NULL) != 0) {
		free(c);
		mw_error_set(error_r, "pthread_rwlock_init failed");
		return NULL;
	}
	return c;
}

/* mw_classifier_open - the global model, loaded from the store */
int mw_classifier_open(mw_store *store, mw_classifier **c_r, mw_error *error_r)
{
	mw_classifier *c = classifier_new(store, false, error_r);
	*c_r = NULL;
	if (c == NULL)
		return -1;
	if (refresh(c, error_r) < 0) {
		mw_classifier_close(&c);
		return -1;
	}
	*c_r = c;
	return 0;
}

/* mw_classifier_open_scope - the model of one scope (0 global, a users.id), loaded */
int mw_classifier_open_scope(mw_store *store, int64_t scope, mw_classifier **c_r, mw_error *error_r)
{
	mw_classifier *c = classifier_new(store, false, error_r);
	*c_r = NULL;
	if (c == NULL)
		return -1;
	c->scope = scope;
	if (refresh(c, error_r) < 0) {
		mw_classifier_close(&c);
		return -1;
	}
	*c_r = c;
	return 0;
}

/* mw_classifier_scope - the scope a classifier's model lives in */
int64_t mw_classifier_scope(const mw_classifier *c)
{
	return c->scope;
}

/* mw_classifier_open_learner - a classifier that only learns: nothing loaded (see .h) */
int mw_classifier_open_learner(mw_store *store, mw_classifier **c_r, mw_error *error_r)
{
	*c_r = classifier_new(store, true, error_r);
	return *c_r != NULL ? 0 : -1;
}

/* mw_classifier_configure - replace the settings */
void mw_classifier_configure(mw_classifier *c, const struct mw_classifier_settings *s)
{
	pthread_rwlock_wrlock(&c->lock);
	c->set = *s;
	pthread_rwlock_unlock(&c->lock);
}

/* mw_classifier_close - free the in-memory model (the store stays open) */
void mw_classifier_close(mw_classifier **cp)
{
	mw_classifier *c = *cp;
	if (c == NULL)
		return;
	if (c->batch)
		(void)mw_store_spam_batch_end(c->store, false, NULL);
	pthread_rwlock_destroy(&c->lock);
	free(c->map.v);
	free(c);
	*cp = NULL;
}

/* mw_classifier_counts - learned messages in the loaded model */
void mw_classifier_counts(mw_classifier *c, int64_t *nspam_r, int64_t *nham_r)
{
	pthread_rwlock_rdlock(&c->lock);
	*nspam_r = c->nspam;
	*nham_r = c->nham;
	pthread_rwlock_unlock(&c->lock);
}

/* ---- tokens of a message ---- */

/* message_tokens - parse and tokenize; the parse is handed back when msg_r is not NULL */
static int message_tokens(mw_classifier *c, const char *msg, size_t len, unsigned flags,
                          struct mw_tokens *t, struct mw_mime_msg **msg_r, mw_error *error_r)
{
	struct mw_mime_msg *m;
	(void)c;
	if (mw_mime_parse(msg, len, NULL, &m, error_r) < 0) {
		mw_error_prefix(error_r, "parsing the message");
		return -1;
	}
	mw_tokenize(m, flags, t);
	if (msg_r != NULL)
		*msg_r = m;
	else
		mw_mime_free(&m);
	return 0;
}

/* ---- scoring ---- */

/* chi2q - survival function of chi-square with v (even) degrees of freedom at x2 */
static double chi2q(double x2, unsigned v)
{
	double m = x2 / 2.0, sum, term;
	unsigned i;
	sum = term = exp(-m);
	for (i = 1; i < v / 2; i++) {
		term *= m / i;
		sum += term;
	}
	return sum < 1.0 ? sum : 1.0;
}

/* robinson_f - Robinson's f(w) of one token */
static double robinson_f(int64_t ns, int64_t nh, int64_t NS, int64_t NH)
{
	double rs = NS > 0 ? (double)ns / (double)NS : 0.0;
	double rh = NH > 0 ? (double)nh / (double)NH : 0.0;
	double n = (double)(ns + nh), p;
	if (rs + rh <= 0.0)
		return ROBINSON_X;
	p = rs / (rs + rh);
	return (ROBINSON_S * ROBINSON_X + n * p) / (ROBINSON_S + n);
}

/* cmp_strength - strongest clue first */
static int cmp_strength(const void *a, const void *b)
{
	double x = fabs(*(const double *)a - 0.5), y = fabs(*(const double *)b - 0.5);
	return x < y ? 1 : x > y ? -1 : 0;
}

/* score_robinson - chi-square combining of the strongest clues (lock held) */
static double score_robinson(const mw_classifier *c, const struct mw_tokens *t)
{
	double *f = mw_malloc((t->count + 1) * sizeof(*f)), S = 0.0, H = 0.0;
	size_t i, n = 0;
	for (i = 0; i < t->count; i++) {
		const struct entry *e = map_find(&c->map, t->hash[i]);
		double v;
		if (e == NULL || e->nspam + e->nham == 0)
			continue;
		v = robinson_f(e->nspam, e->nham, c->nspam, c->nham);
		if (fabs(v - 0.5) >= ROBINSON_MIN_STRENGTH)
			f[n++] = v;
	}
	if (n > ROBINSON_MAX_CLUES) {
		qsort(f, n, sizeof(*f), cmp_strength);
		n = ROBINSON_MAX_CLUES;
	}
	if (n == 0) {
		free(f);
		return 0.5;
	}
	for (i = 0; i < n; i++) {
		double v = f[i] < 1e-6 ? 1e-6 : f[i] > 1 - 1e-6 ? 1 - 1e-6 : f[i];
		S += log(1.0 - v);
		H += log(v);
	}
	free(f);
	S = 1.0 - chi2q(-2.0 * S, 2 * (unsigned)n);
	H = 1.0 - chi2q(-2.0 * H, 2 * (unsigned)n);
	return (S - H + 1.0) / 2.0;
}

/* token_scale - each token's feature value: 1, or 1/sqrt(count) when normalized */
static double token_scale(const mw_classifier *c, size_t count)
{
	return c->set.normalize && count > 0 ? 1.0 / sqrt((double)count) : 1.0;
}

/* linear_sum_of - bias + the scaled sum of the weights of count tokens (lock held) */
static double linear_sum_of(const mw_classifier *c, const uint64_t *hash, size_t count)
{
	const struct entry *e = map_find(&c->map, c->bias_hash);
	double z = e != NULL ? e->weight : 0.0, sum = 0.0;
	size_t i;
	for (i = 0; i < count; i++) {
		e = map_find(&c->map, hash[i]);
		if (e != NULL)
			sum += e->weight;
	}
	return z + sum * token_scale(c, count);
}

/* linear_sum - linear_sum_of a message's tokens (lock held) */
static double linear_sum(const mw_classifier *c, const struct mw_tokens *t)
{
	return linear_sum_of(c, t->hash, t->count);
}

/* sigmoid - logistic function, safe for large |z| */
static double sigmoid(double z)
{
	if (z >= 0)
		return 1.0 / (1.0 + exp(-z));
	return exp(z) / (1.0 + exp(z));
}

/* sharpen - combined's mean of two probabilities on the bands' scale: sigmoid(2 logit m) */
static double sharpen(double m)
{
	double a = m * m, b = (1.0 - m) * (1.0 - m);
	return a + b > 0.0 ? a / (a + b) : 0.5;
}

/* score_tokens - probability by method (lock held); 1 when too little training */
static int score_tokens(const mw_classifier *c, enum mw_classifier_method method,
                        const struct mw_tokens *t, double *p_r)
{
	if (c->nspam < (int64_t)c->set.min_spam || c->nham < (int64_t)c->set.min_ham ||
	    c->nspam == 0 || c->nham == 0) {
		*p_r = -1.0;
		return 1;
	}
	if (method == MW_CLASSIFIER_ROBINSON)
		*p_r = score_robinson(c, t);
	else if (method == MW_CLASSIFIER_LOGISTIC)
		*p_r = sigmoid(linear_sum(c, t));
	else
		*p_r = sharpen((score_robinson(c, t) + sigmoid(linear_sum(c, t))) / 2.0);
	return 0;
}

/* refresh_due - refresh_ms have passed since the last look at the store */
static bool refresh_due(const mw_classifier *c)
{
	return mw_mono_ms() - c->last_check_ms >= (int64_t)c->set.refresh_ms;
}

/* mw_classifier_score_with - score by a given method, no refresh */
int mw_classifier_score_with(mw_classifier *c, enum mw_classifier_method method, const char *msg,
                             size_t len, double *p_spam_r, mw_error *error_r)
{
	struct mw_tokens t;
	int ret;
	*p_spam_r = -1.0;
	mw_tokens_init(&t, false);
	if (message_tokens(c, msg, len, c->set.token_flags, &t, NULL, error_r) < 0) {
		mw_tokens_free(&t);
		return -1;
	}
	pthread_rwlock_rdlock(&c->lock);
	ret = score_tokens(c, method, &t, p_spam_r);
	pthread_rwlock_unlock(&c->lock);
	mw_tokens_free(&t);
	return ret;
}

/* mw_classifier_score - spam probability of a message (see mw-classify.h) */
int mw_classifier_score(mw_classifier *c, const char *msg, size_t len, double *p_spam_r,
                        mw_error *error_r)
{
	*p_spam_r = -1.0;
	pthread_rwlock_rdlock(&c->lock);
	if (refresh_due(c) && !c->batch) {
		pthread_rwlock_unlock(&c->lock);
		pthread_rwlock_wrlock(&c->lock);
		if (refresh_due(c) && refresh(c, error_r) < 0) {
			pthread_rwlock_unlock(&c->lock);
			return -1;
		}
	}
	pthread_rwlock_unlock(&c->lock);
	return mw_classifier_score_with(c, c->set.method, msg, len, p_spam_r, error_r);
}

/* ---- learning ---- */

/* digest - BLAKE2b-256 of the Message-ID and the body, or of the whole message when it has
   no Message-ID (CRs and trailing line ends dropped, so a message stored with LF or CRLF
   line ends, in an mbox or a maildir, is the same message) */
static void digest(const char *msg, size_t len, const char *msg_id, unsigned char *out)
{
	crypto_generichash_state st;
	const char *body = NULL, *p, *end = msg + len;
	size_t i;
	for (i = 0; msg_id != NULL && i + 1 < len; i++) {
		if (msg[i] == '\n' && (msg[i + 1] == '\n' ||
		                       (msg[i + 1] == '\r' && i + 2 < len && msg[i + 2] == '\n'))) {
			body = msg + i + 1;
			break;
		}
	}
	crypto_generichash_init(&st, NULL, 0, MW_SPAM_DIGEST_LEN);
	if (msg_id != NULL) {
		crypto_generichash_update(&st, (const unsigned char *)"id:", 3);
		crypto_generichash_update(&st, (const unsigned char *)msg_id, strlen(msg_id));
	}
	crypto_generichash_update(&st, (const unsigned char *)"\0", 1);
	/* trailing line ends differ between mbox, maildir and IMAP copies of one message */
	while (end > msg && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	p = msg_id == NULL ? msg : body != NULL ? body : end;
	while (p < end) {
		const char *cr = memchr(p, '\r', (size_t)(end - p));
		const char *stop = cr != NULL ? cr : end;
		crypto_generichash_update(&st, (const unsigned char *)p, (size_t)(stop - p));
		p = cr != NULL ? cr + 1 : end;
	}
	crypto_generichash_final(&st, out, MW_SPAM_DIGEST_LEN);
}

/* trimmed_id - the Message-ID without surrounding space, into buf */
static const char *trimmed_id(const char *v, char *buf, size_t size)
{
	mw_slice s;
	if (v == NULL)
		return NULL;
	s = mw_slice_trim(mw_slice_from(v));
	if (s.len == 0 || s.len >= size)
		return NULL;
	memcpy(buf, s.ptr, s.len);
	buf[s.len] = '\0';
	return buf;
}

/* user_digest - the digest of one user's judgement: of who and of the message's digest */
static void user_digest(const char *who, const unsigned char *msg_digest, unsigned char *out)
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, MW_SPAM_DIGEST_LEN);
	crypto_generichash_update(&st, (const unsigned char *)"user:", 5);
	crypto_generichash_update(&st, (const unsigned char *)who, strlen(who) + 1);
	crypto_generichash_update(&st, msg_digest, MW_SPAM_DIGEST_LEN);
	crypto_generichash_final(&st, out, MW_SPAM_DIGEST_LEN);
}

/* mw_classifier_prepare - the tokens and the (per user) digest of a message to learn */
int mw_classifier_prepare(unsigned token_flags, const char *msg, size_t len, const char *who,
                          struct mw_tokens *t, unsigned char *digest_r, mw_error *error_r)
{
	unsigned char dg[MW_SPAM_DIGEST_LEN];
	struct mw_mime_msg *m;
	char idbuf[1000];
	const char *msg_id;
	if (sodium_init() < 0) {
		mw_error_set(error_r, "libsodium failed to initialise");
		return -1;
	}
	if (mw_mime_parse(msg, len, NULL, &m, error_r) < 0) {
		mw_error_prefix(error_r, "parsing the message");
		return -1;
	}
	mw_tokenize(m, token_flags, t);
	msg_id = trimmed_id(mw_mime_header(m, "Message-ID"), idbuf, sizeof(idbuf));
	digest(msg, len, msg_id, dg);
	mw_mime_free(&m);
	if (who != NULL)
		user_digest(who, dg, digest_r);
	else
		memcpy(digest_r, dg, sizeof(dg));
	return 0;
}

/* learner_begin - a learner's transaction and the rows of the message's tokens and the
   bias, read inside it (lock held) */
static int learner_begin(mw_classifier *c, const uint64_t *hash, size_t count, bool *own_tx_r,
                         mw_error *error_r)
{
	uint64_t bias = c->bias_hash;
	*own_tx_r = false;
	if (!c->batch) {
		if (mw_store_spam_batch_begin(c->store, error_r) != MW_STORE_OK)
			return -1;
		*own_tx_r = true;
	}
	free(c->map.v);
	memset(&c->map, 0, sizeof(c->map));
	if (mw_store_spam_tokens_get(c->store, c->scope, hash, count, load_cb, &c->map, error_r) !=
	        MW_STORE_OK ||
	    mw_store_spam_tokens_get(c->store, c->scope, &bias, 1, load_cb, &c->map, error_r) !=
	        MW_STORE_OK) {
		if (*own_tx_r)
			(void)mw_store_spam_batch_end(c->store, false, NULL);
		*own_tx_r = false;
		return -1;
	}
	return 0;
}

/* mw_classifier_learn_tokens - learn one prepared message (see mw-classify.h) */
int mw_classifier_learn_tokens(mw_classifier *c, const uint64_t *hash, size_t count,
                               const unsigned char *dg, bool spam, mw_error *error_r)
{
	return mw_classifier_learn_tokens_in(c, c->scope, hash, count, dg, spam, error_r);
}

/* mw_classifier_learn_tokens_in - learn one prepared message into a scope (see .h) */
int mw_classifier_learn_tokens_in(mw_classifier *c, int64_t scope, const uint64_t *hash,
                                  size_t count, const unsigned char *dg, bool spam,
                                  mw_error *error_r)
{
	struct mw_spam_token *deltas;
	struct mw_spam_learn l;
	bool was_spam = false, flip = false, own_tx = false;
	double z, scale, total = 0.0, y = spam ? 1.0 : 0.0;
	unsigned step;
	size_t i, n;
	int ret;

	if (!c->learner && scope != c->scope) {
		mw_error_set(error_r, "a loaded model learns only into its own scope");
		return -1;
	}
	pthread_rwlock_wrlock(&c->lock);
	c->scope = scope; /* a learner serves every scope, one learn at a time */
	if (c->learner && learner_begin(c, hash, count, &own_tx, error_r) < 0) {
		pthread_rwlock_unlock(&c->lock);
		mw_error_prefix(error_r, "store");
		return -1;
	}
	ret = mw_store_spam_learned_get(c->store, c->scope, dg, &was_spam, error_r);
	if (ret == MW_STORE_ERROR || (ret == MW_STORE_OK && was_spam == spam)) {
		if (own_tx)
			(void)mw_store_spam_batch_end(c->store, false, NULL);
		pthread_rwlock_unlock(&c->lock);
		if (ret == MW_STORE_ERROR) {
			mw_error_prefix(error_r, "store");
			return -1;
		}
		return 1;
	}
	flip = ret == MW_STORE_OK;
	/* the logistic steps: every token of the message gets the same delta per step (its
	   feature value times the step), the bias the step itself */
	z = linear_sum_of(c, hash, count);
	n = count + 1; /* + bias */
	scale = token_scale(c, count);
	for (step = 0; step < c->set.max_steps; step++) {
		double err = y - sigmoid(z), d;
		if (fabs(err) < c->set.margin)
			break;
		d = (spam ? c->set.rate : c->set.ham_rate) * err;
		total += d;
		z += d * (1.0 + (double)count * scale * scale);
	}
	deltas = mw_calloc(n, sizeof(*deltas));
	for (i = 0; i < n; i++) {
		struct mw_spam_token *d = &deltas[i];
		struct entry *e;
		d->hash = i < count ? hash[i] : c->bias_hash;
		d->nspam = (spam ? 1 : 0) - (flip && was_spam ? 1 : 0);
		d->nham = (spam ? 0 : 1) - (flip && !was_spam ? 1 : 0);
		d->weight = i < count ? total * scale : total;
		e = map_get(&c->map, d->hash);
		e->nspam = clamp32((int64_t)e->nspam + d->nspam);
		e->nham = clamp32((int64_t)e->nham + d->nham);
		e->weight += (float)d->weight;
	}
	memset(&l, 0, sizeof(l));
	l.scope = c->scope;
	l.digest = dg;
	l.spam = spam;
	l.dspam = (spam ? 1 : 0) - (flip && was_spam ? 1 : 0);
	l.dham = (spam ? 0 : 1) - (flip && !was_spam ? 1 : 0);
	l.tokens = deltas;
	l.count = n;
	l.now = now_of(&c->set);
	c->nspam += l.dspam;
	c->nham += l.dham;
	ret = mw_store_spam_learn(c->store, &l, error_r);
	if (ret == MW_STORE_OK && own_tx)
		ret = mw_store_spam_batch_end(c->store, true, error_r);
	else if (own_tx)
		(void)mw_store_spam_batch_end(c->store, false, NULL);
	free(deltas);
	if (ret != MW_STORE_OK) {
		/* memory now holds a learn the store refused: start again from the store */
		mw_error_prefix(error_r, "store");
		free(c->map.v);
		memset(&c->map, 0, sizeof(c->map));
		c->generation = 0;
		if (!c->batch && !c->learner)
			(void)refresh(c, NULL);
		pthread_rwlock_unlock(&c->lock);
		return -1;
	}
	pthread_rwlock_unlock(&c->lock);
	return 0;
}

/* mw_classifier_learn - learn one labelled message (see mw-classify.h) */
int mw_classifier_learn(mw_classifier *c, const char *msg, size_t len, bool spam,
                        const char *msg_id, mw_error *error_r)
{
	unsigned char dg[MW_SPAM_DIGEST_LEN];
	struct mw_mime_msg *m = NULL;
	struct mw_tokens t;
	char idbuf[1000];
	int ret;
	mw_tokens_init(&t, false);
	if (message_tokens(c, msg, len, c->set.token_flags, &t, &m, error_r) < 0) {
		mw_tokens_free(&t);
		return -1;
	}
	if (msg_id == NULL)
		msg_id = trimmed_id(mw_mime_header(m, "Message-ID"), idbuf, sizeof(idbuf));
	digest(msg, len, msg_id, dg);
	mw_mime_free(&m);
	ret = mw_classifier_learn_tokens(c, t.hash, t.count, dg, spam, error_r);
	mw_tokens_free(&t);
	return ret;
}

/* mw_classifier_batch_begin - one store transaction for many learns */
int mw_classifier_batch_begin(mw_classifier *c, mw_error *error_r)
{
	int ret;
	pthread_rwlock_wrlock(&c->lock);
	ret = mw_store_spam_batch_begin(c->store, error_r);
	if (ret == MW_STORE_OK)
		c->batch = true;
	pthread_rwlock_unlock(&c->lock);
	if (ret != MW_STORE_OK) {
		mw_error_prefix(error_r, "store");
		return -1;
	}
	return 0;
}

/* mw_classifier_batch_end - commit (or roll back and reload) a learn batch */
int mw_classifier_batch_end(mw_classifier *c, bool commit, mw_error *error_r)
{
	int ret;
	pthread_rwlock_wrlock(&c->lock);
	ret = mw_store_spam_batch_end(c->store, commit, error_r);
	c->batch = false;
	if (ret != MW_STORE_OK || !commit) {
		free(c->map.v);
		memset(&c->map, 0, sizeof(c->map));
		c->generation = 0;
		c->nspam = c->nham = 0;
		if (!c->learner)
			(void)refresh(c, NULL);
	}
	pthread_rwlock_unlock(&c->lock);
	if (ret != MW_STORE_OK) {
		mw_error_prefix(error_r, "store");
		return -1;
	}
	return 0;
}

/* ---- per-user models ---- */

/* refresh_if_due - the periodic look at the store, as mw_classifier_score does it */
static int refresh_if_due(mw_classifier *c, mw_error *error_r)
{
	int ret = 0;
	pthread_rwlock_rdlock(&c->lock);
	if (refresh_due(c) && !c->batch) {
		pthread_rwlock_unlock(&c->lock);
		pthread_rwlock_wrlock(&c->lock);
		if (refresh_due(c) && !c->batch)
			ret = refresh(c, error_r);
	}
	pthread_rwlock_unlock(&c->lock);
	return ret;
}

/* mw_classifier_combine - the verdict of a user's model beside the global one (see .h) */
double mw_classifier_combine(double p_global, double p_user, double user_weight)
{
	if (p_user < 0.0)
		return p_global;
	if (p_global < 0.0)
		return p_user;
	return user_weight * p_user + (1.0 - user_weight) * p_global;
}

/* mw_classifier_score_user - a message for one user: the global model and the user's */
int mw_classifier_score_user(mw_classifier *g, mw_classifier *u, const char *msg, size_t len,
                             double *p_spam_r, bool *used_user_r, mw_error *error_r)
{
	struct mw_tokens t;
	double pg = -1.0, pu = -1.0;
	int rg, ru = 1;
	*p_spam_r = -1.0;
	if (used_user_r != NULL)
		*used_user_r = false;
	if (refresh_if_due(g, error_r) < 0 || (u != NULL && refresh_if_due(u, error_r) < 0))
		return -1;
	mw_tokens_init(&t, false);
	if (message_tokens(g, msg, len, g->set.token_flags, &t, NULL, error_r) < 0) {
		mw_tokens_free(&t);
		return -1;
	}
	pthread_rwlock_rdlock(&g->lock);
	rg = score_tokens(g, g->set.method, &t, &pg);
	pthread_rwlock_unlock(&g->lock);
	if (u != NULL) {
		pthread_rwlock_rdlock(&u->lock);
		ru = score_tokens(u, u->set.method, &t, &pu);
		pthread_rwlock_unlock(&u->lock);
	}
	mw_tokens_free(&t);
	if (rg != 0 && ru != 0)
		return 1;
	*p_spam_r =
	    mw_classifier_combine(rg == 0 ? pg : -1.0, ru == 0 ? pu : -1.0, g->set.user_weight);
	if (used_user_r != NULL)
		*used_user_r = ru == 0;
	return 0;
}

/* ---- expiry ---- */

/* mw_classifier_expire - expire one scope's tokens by the settings (see mw-classify.h) */
int mw_classifier_expire(mw_store *store, int64_t scope, const struct mw_classifier_settings *s,
                         bool dry_run, int64_t limit, struct mw_spam_expire_result *res_r,
                         mw_error *error_r)
{
	struct mw_spam_expire x;
	memset(&x, 0, sizeof(x));
	x.scope = scope;
	x.now = now_of(s);
	x.max_age = s->expire_age;
	x.max_tokens = scope == 0 ? s->max_tokens : s->user_max_tokens;
	x.keep = mw_token_hash(BIAS_TOKEN, strlen(BIAS_TOKEN));
	x.limit = limit;
	x.dry_run = dry_run;
	if (mw_store_spam_expire(store, &x, res_r, error_r) != MW_STORE_OK) {
		mw_error_prefix(error_r, "store");
		return -1;
	}
	return 0;
}

/* mw_classifier_expire_auto - the automatic expiry of a scope, when it is due */
int mw_classifier_expire_auto(mw_store *store, int64_t scope,
                              const struct mw_classifier_settings *s,
                              struct mw_spam_expire_result *res_r, mw_error *error_r)
{
	int ret;
	memset(res_r, 0, sizeof(*res_r));
	if (s->expire_age == 0 && (scope == 0 ? s->max_tokens : s->user_max_tokens) == 0)
		return 0;
	ret = mw_store_spam_expire_claim(store, scope, now_of(s), s->expire_interval, error_r);
	if (ret == MW_STORE_NOTFOUND)
		return 0;
	if (ret != MW_STORE_OK) {
		mw_error_prefix(error_r, "store");
		return -1;
	}
	if (mw_classifier_expire(store, scope, s, false, s->expire_limit, res_r, error_r) < 0)
		return -1;
	return 1;
}

/* ---- explaining ---- */

struct clue_sort {
	struct mw_classifier_clue clue;
	double key;
};

/* cmp_clue - largest key first */
static int cmp_clue(const void *a, const void *b)
{
	double x = ((const struct clue_sort *)a)->key, y = ((const struct clue_sort *)b)->key;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* mw_classifier_explain - the message's known tokens, strongest (by |weight|) first */
int mw_classifier_explain(mw_classifier *c, const char *msg, size_t len,
                          struct mw_classifier_clue *clues, size_t max, size_t *count_r,
                          mw_error *error_r)
{
	struct mw_tokens t;
	struct clue_sort *v;
	size_t i, n = 0;
	*count_r = 0;
	mw_tokens_init(&t, true);
	if (message_tokens(c, msg, len, c->set.token_flags, &t, NULL, error_r) < 0) {
		mw_tokens_free(&t);
		return -1;
	}
	v = mw_calloc(t.count + 1, sizeof(*v));
	pthread_rwlock_rdlock(&c->lock);
	for (i = 0; i < t.count; i++) {
		const struct entry *e = map_find(&c->map, t.hash[i]);
		struct mw_classifier_clue *cl = &v[n].clue;
		if (e == NULL)
			continue;
		mw_strlcpy(cl->text, t.text[i], sizeof(cl->text));
		cl->nspam = e->nspam;
		cl->nham = e->nham;
		cl->weight = e->weight;
		cl->prob = robinson_f(e->nspam, e->nham, c->nspam, c->nham);
		v[n].key = c->set.method == MW_CLASSIFIER_ROBINSON ? fabs(cl->prob - 0.5)
		                                                   : fabs(cl->weight);
		n++;
	}
	pthread_rwlock_unlock(&c->lock);
	qsort(v, n, sizeof(*v), cmp_clue);
	for (i = 0; i < n && i < max; i++)
		clues[i] = v[i].clue;
	*count_r = i;
	free(v);
	mw_tokens_free(&t);
	return 0;
}
