/* mw-classify.h - the statistical spam classifier: learns from labelled messages, scores
 * new ones with a spam probability.
 *
 * Two methods share one token model (lib/mw-tokenize tokens; per token: spam and ham
 * counts and a weight, kept in the store):
 *   - robinson: Robinson's f(w) with Fisher's chi-square combining, as SpamBayes and
 *     SpamAssassin's Bayes do (the baseline);
 *   - logistic: an online logistic regression over the same binary token features,
 *     trained per learned message until it is on the right side with a margin;
 *   - combined (the default): the mean of the two probabilities, sharpened (sigmoid of
 *     twice its log-odds) so that the whole scorer's BAYES_67 edge sits where at most
 *     0.2 % of ham scores higher; measured best (bench/README.md) and keeps half of the
 *     verdict independent of learning order.
 * Learning always updates both, so the method can be switched without relearning.
 *
 * Scopes: a model lives in a scope of the store: 0 the global model, a users.id that user's
 * own model ([classifier] per_user). A message for one local user is scored with both
 * (mw_classifier_score_user): the user's model counts only once the user has learned
 * user_min_spam spam and user_min_ham ham; then the two probabilities are mixed,
 * p = user_weight * p_user + (1 - user_weight) * p_global (bench/README.md measured the
 * weights). Learning from a user feeds the user's model and, with user_learn_global, the
 * global one; each scope keeps its own learned digests, so a message counts once per
 * scope and user.
 *
 * Expiry: token rows carry the time of the last learn that carried them (never updated
 * by scoring); mw_classifier_expire deletes rows older than expire_age and the least
 * useful beyond max_tokens (user_max_tokens for a user's model), at most expire_limit
 * per run; readers notice (spam_meta.reset_gen) and reload the model whole.
 *
 * Threads: one mw_classifier may be shared by threads. Scoring takes a read lock on the
 * in-memory model; learning and the periodic refresh from the store take the write lock
 * and are the only users of the store handle, which must therefore be the classifier's
 * own (no other thread may use that mw_store while the classifier lives).
 */
#ifndef MW_CLASSIFY_H
#define MW_CLASSIFY_H

#include "mw-config.h"
#include "mw-store.h"
#include "mw-tokenize.h"

typedef struct mw_classifier mw_classifier;

enum mw_classifier_method {
	MW_CLASSIFIER_COMBINED, /* the two probabilities' mean, sharpened (the default) */
	MW_CLASSIFIER_LOGISTIC,
	MW_CLASSIFIER_ROBINSON,
};

struct mw_classifier_settings {
	enum mw_classifier_method method;
	unsigned min_spam, min_ham; /* fewer learned messages: too little training to judge */
	unsigned refresh_ms;        /* how often scoring looks for changes made by others */
	/* the learning rule (bench/tests only; the defaults are the measured best) */
	double rate;     /* logistic: learning rate (spam) */
	double ham_rate; /* logistic: learning rate for ham, higher: a false positive costs more */
	unsigned max_steps;   /* logistic: gradient steps per learned message, at most */
	double margin;        /* logistic: stop when |label - p| < margin */
	bool normalize;       /* logistic: token features 1/sqrt(tokens) instead of 1 */
	unsigned token_flags; /* enum mw_tokenize_flag */
	/* per-user models */
	bool per_user;                        /* score local mail with the recipient's model */
	unsigned user_min_spam, user_min_ham; /* a user's model counts from these counts on */
	double user_weight;                   /* the user's share of the mixed probability */
	bool learn_global;                    /* a user's judgement also teaches the global model */
	/* expiry */
	int64_t expire_age;      /* seconds since a token was last learned; 0: never by age */
	int64_t max_tokens;      /* global model's token rows, at most; 0: unbounded */
	int64_t user_max_tokens; /* a user's model's token rows, at most; 0: unbounded */
	int64_t expire_interval; /* seconds between automatic expiry runs of a scope */
	int64_t expire_limit;    /* rows one automatic run deletes, at most */
	int64_t (*clock)(void);  /* tests: the time learns and expiry see; NULL: mw_now */
};

void mw_classifier_settings_default(struct mw_classifier_settings *s);
/* The [classifier] keys of cfg into s (defaults for the rest). */
void mw_classifier_settings_from_config(const mw_config *cfg, struct mw_classifier_settings *s);
const char *mw_classifier_method_name(enum mw_classifier_method m);
/* The settings a user's model is judged by: s with min_spam/min_ham = user_min_*. */
void mw_classifier_user_settings(const struct mw_classifier_settings *s,
                                 struct mw_classifier_settings *user_r);

/* Loads the global model from the store into memory. */
int mw_classifier_open(mw_store *store, mw_classifier **c_r, mw_error *error_r);
/* Loads the model of one scope (0 global, a users.id) from the store into memory. */
int mw_classifier_open_scope(mw_store *store, int64_t scope, mw_classifier **c_r,
                             mw_error *error_r);
int64_t mw_classifier_scope(const mw_classifier *c);
void mw_classifier_configure(mw_classifier *c, const struct mw_classifier_settings *s);
void mw_classifier_close(mw_classifier **c);

/* 0 with *p_spam_r in [0,1]; 1 with *p_spam_r = -1 when the model has learned too few
   messages to judge; -1 on error (a message mw-mime refuses, the store). */
int mw_classifier_score(mw_classifier *c, const char *msg, size_t len, double *p_spam_r,
                        mw_error *error_r);
/* The same with the method given, without refreshing from the store (bench, tests). */
int mw_classifier_score_with(mw_classifier *c, enum mw_classifier_method method, const char *msg,
                             size_t len, double *p_spam_r, mw_error *error_r);

/* 0 learned, 1 already learned with that label (nothing done), -1 error. A message learned
   before with the other label is unlearned first (its counts move to the new label).
   msg_id: the Message-ID to dedupe by (NULL: the message's own); the digest covers it and
   the body. */
int mw_classifier_learn(mw_classifier *c, const char *msg, size_t len, bool spam,
                        const char *msg_id, mw_error *error_r);
/* Learning from users (the Dovecot plugin):
   - a learner holds no model in memory: each learn reads the store rows of the message's
     tokens inside its own transaction (an IMAP process learns a few messages; loading the
     whole model there would cost more than the learns);
   - mw_classifier_prepare makes what a learn needs from a message once: its tokens (added
     to t, with token_flags, enum mw_tokenize_flag) and the digest the learned label is kept
     under; with who (a username) that digest is the user's: one user's judgement of a
     message counts once however often it is repeated, and a flipped judgement unlearns
     the old label first, while another user's judgement of the same message is a vote of
     its own. who NULL: the digest of mw_classifier_learn;
   - mw_classifier_learn_tokens learns prepared tokens (returns as mw_classifier_learn). */
int mw_classifier_open_learner(mw_store *store, mw_classifier **c_r, mw_error *error_r);
int mw_classifier_prepare(unsigned token_flags, const char *msg, size_t len, const char *who,
                          struct mw_tokens *t, unsigned char *digest_r, mw_error *error_r);
int mw_classifier_learn_tokens(mw_classifier *c, const uint64_t *hash, size_t count,
                               const unsigned char *digest, bool spam, mw_error *error_r);

/* The same into a given scope: any scope for a learner, only its own for a loaded model. */
int mw_classifier_learn_tokens_in(mw_classifier *c, int64_t scope, const uint64_t *hash,
                                  size_t count, const unsigned char *digest, bool spam,
                                  mw_error *error_r);

/* A message for one user: global is the global model, user that user's (NULL: none); each
   is refreshed from the store when due (user's store must not be used by another thread
   meanwhile). Returns as mw_classifier_score; *used_user_r: the user's model counted. */
int mw_classifier_score_user(mw_classifier *global, mw_classifier *user, const char *msg,
                             size_t len, double *p_spam_r, bool *used_user_r, mw_error *error_r);
/* The mixing rule: p_user < 0 (untrained) gives p_global, p_global < 0 gives p_user. */
double mw_classifier_combine(double p_global, double p_user, double user_weight);

/* Expires a scope's tokens by s (expire_age, max_tokens or user_max_tokens), at most limit
   rows (0: no bound); dry_run counts only. 0 or -1. */
int mw_classifier_expire(mw_store *store, int64_t scope, const struct mw_classifier_settings *s,
                         bool dry_run, int64_t limit, struct mw_spam_expire_result *res_r,
                         mw_error *error_r);
/* The automatic expiry: runs mw_classifier_expire (expire_limit rows at most) when the scope
   has not been expired for expire_interval and this caller claims the run: 1 it ran, 0 not
   due (or nothing configured), -1 error. */
int mw_classifier_expire_auto(mw_store *store, int64_t scope,
                              const struct mw_classifier_settings *s,
                              struct mw_spam_expire_result *res_r, mw_error *error_r);

/* A learn run: learns between begin and end go to the store in one transaction per batch
   (end commits, or rolls back and reloads the model when commit is false). */
int mw_classifier_batch_begin(mw_classifier *c, mw_error *error_r);
int mw_classifier_batch_end(mw_classifier *c, bool commit, mw_error *error_r);

/* Learned message counts of the loaded model. */
void mw_classifier_counts(mw_classifier *c, int64_t *nspam_r, int64_t *nham_r);

/* Debugging (mailwardenctl classify): the strongest tokens of a message. */
struct mw_classifier_clue {
	char text[MW_TOKEN_TEXT_MAX + 1];
	double prob;   /* Robinson's f(w) */
	double weight; /* logistic weight */
	int64_t nspam, nham;
};
int mw_classifier_explain(mw_classifier *c, const char *msg, size_t len,
                          struct mw_classifier_clue *clues, size_t max, size_t *count_r,
                          mw_error *error_r);

#endif
