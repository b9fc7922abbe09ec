/* mw-classify.h - the statistical spam classifier: learns from labelled messages, scores
 * new ones with a spam probability.
 *
 * Two methods share one token model (lib/mw-tokenize tokens; per token: spam and ham
 * counts and a weight, kept in the store):
 *   - robinson: Robinson's f(w) with Fisher's chi-square combining, as SpamBayes and
 *     SpamAssassin's Bayes do (the baseline);
 *   - logistic: an online logistic regression over the same binary token features,
 *     trained per learned message until it is on the right side with a margin;
 *   - combined (the default): the mean of the two probabilities, which measured best
 *     (bench/README.md) and keeps half of the verdict independent of learning order.
 * Learning always updates both, so the method can be switched without relearning.
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
	MW_CLASSIFIER_COMBINED, /* the mean of the two probabilities (the default) */
	MW_CLASSIFIER_LOGISTIC,
	MW_CLASSIFIER_ROBINSON,
};

struct mw_classifier_settings {
	enum mw_classifier_method method;
	unsigned min_spam, min_ham; /* fewer learned messages: too little training to judge */
	unsigned refresh_ms;        /* how often scoring looks for changes made by others */
	/* the learning rule (bench/tests only; the defaults are the measured best) */
	double rate;          /* logistic: learning rate */
	unsigned max_steps;   /* logistic: gradient steps per learned message, at most */
	double margin;        /* logistic: stop when |label - p| < margin */
	bool normalize;       /* logistic: token features 1/sqrt(tokens) instead of 1 */
	unsigned token_flags; /* enum mw_tokenize_flag */
};

void mw_classifier_settings_default(struct mw_classifier_settings *s);
/* The [classifier] keys of cfg into s (defaults for the rest). */
void mw_classifier_settings_from_config(const mw_config *cfg, struct mw_classifier_settings *s);
const char *mw_classifier_method_name(enum mw_classifier_method m);

/* Loads the global model from the store into memory. */
int mw_classifier_open(mw_store *store, mw_classifier **c_r, mw_error *error_r);
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
