/*
 * ctl-users.c - mailwardenctl init, user and allow-from commands (on the store directly).
 *
 * Every change is appended to the audit log as actor "cli:LOGIN".
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-password.h"
#include "mw-pattern.h"
#include "mw-secret.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


/* ctl_mkdir_parent - create the directory holding path (one level) when missing */
static int ctl_mkdir_parent(const char *path, mode_t mode)
{
	char dir[4096];
	char *slash;
	if (mw_strlcpy(dir, path, sizeof(dir)) < 0)
		return -1;
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, mode) < 0 && errno != EEXIST) {
		ctl_err("cannot create directory %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* cmd_init - create the store (apply migrations) and the master key file */
static int cmd_init(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	const char *url = mw_config_str(ctl->cfg, MWK_STORE);
	const char *keypath = mw_config_str(ctl->cfg, MWK_MASTER_KEY);
	struct stat st;
	int first, before = 0, after = 0;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 0, 0) != EXIT_OK)
		return EXIT_USAGE;

	if (strncmp(url, "sqlite:", 7) == 0 && ctl_mkdir_parent(url + 7, 0750) < 0)
		return EXIT_ERROR;
	ctl->store = mw_store_open(url, (unsigned)mw_config_int(ctl->cfg, MWK_STORE_BUSY_TIMEOUT) * 1000,
				   &err);
	if (ctl->store == NULL) {
		ctl_err("store %s: %s", url, err.msg);
		return EXIT_ERROR;
	}
	if (mw_store_schema_version(ctl->store, &before, &err) < 0 ||
	    mw_store_migrate(ctl->store, &err) < 0 ||
	    mw_store_schema_version(ctl->store, &after, &err) < 0) {
		ctl_err("store %s: %s", url, err.msg);
		return EXIT_ERROR;
	}
	if (before == after)
		printf("store %s: schema version %d, up to date\n", url, after);
	else
		printf("store %s: schema version %d -> %d\n", url, before, after);

	if (stat(keypath, &st) == 0) {
		mw_master_key key;
		if (mw_secret_key_load(keypath, &key, &err) < 0) {
			ctl_err("master key: %s", err.msg);
			return EXIT_ERROR;
		}
		mw_secret_key_wipe(&key);
		printf("master key %s: present\n", keypath);
	} else {
		if (ctl_mkdir_parent(keypath, 0750) < 0)
			return EXIT_ERROR;
		if (mw_secret_key_create(keypath, &err) < 0) {
			ctl_err("master key: %s", err.msg);
			return EXIT_ERROR;
		}
		printf("master key %s: created\n", keypath);
	}
	if (before != after)
		return ctl_audit(ctl, "store.init", url, "");
	return EXIT_OK;
}

/* ---- user ------------------------------------------------------------------------------ */

/* cmd_user_add - create a user with a password from the chosen source */
static int cmd_user_add(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1], password[MW_PASSWORD_MAX + 2];
	char hash[MW_PASSWORD_HASH_MAX];
	enum mw_user_role role = MW_ROLE_USER;
	enum mw_user_status status = MW_USER_ACTIVE;
	int64_t id;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_ROLE, OPT_STATUS, OPT_DESCRIPTION,
		 OPT_PASSWORD_STDIN, OPT_GENERATE);
	if (ctl_one_user(argc, argv, first, username, sizeof(username)) != EXIT_OK)
		return EXIT_USAGE;
	if (o.role != NULL && mw_user_role_parse(o.role, &role) < 0) {
		ctl_err("--role: expected admin or user, not \"%s\"", o.role);
		return EXIT_USAGE;
	}
	if (o.status != NULL && mw_user_status_parse(o.status, &status) < 0) {
		ctl_err("--status: expected active, pending or disabled, not \"%s\"", o.status);
		return EXIT_USAGE;
	}
	if (o.description != NULL && strlen(o.description) > MW_DESCRIPTION_MAX) {
		ctl_err("--description: longer than %d bytes", MW_DESCRIPTION_MAX);
		return EXIT_USAGE;
	}
	ret = ctl_get_password(ctl, o.pw, password, sizeof(password));
	if (ret == EXIT_OK)
		ret = ctl_hash_password(ctl, password, hash, sizeof(hash));
	if (ret != EXIT_OK) {
		mw_memzero(password, sizeof(password));
		return ret;
	}
	ret = mw_store_user_add(ctl->store, username, hash, status, role,
				o.description != NULL ? o.description : "", &id, &err);
	if (ret != MW_STORE_OK) {
		mw_memzero(password, sizeof(password));
		return ctl_store_exit(ret, &err, username);
	}
	if (o.pw == PW_GENERATE)
		printf("%s\n", password);
	mw_memzero(password, sizeof(password));
	fprintf(stderr, "user %s added (%s, %s)\n", username, mw_user_role_name(role),
		mw_user_status_name(status));
	return ctl_audit(ctl, "user.add", username, "");
}

/* cmd_user_passwd - set a new password */
static int cmd_user_passwd(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1], password[MW_PASSWORD_MAX + 2];
	char hash[MW_PASSWORD_HASH_MAX];
	struct mw_user user;
	unsigned sessions = 0, apppws = 0;
	int64_t uid;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_PASSWORD_STDIN, OPT_GENERATE);
	if (ctl_one_user(argc, argv, first, username, sizeof(username)) != EXIT_OK)
		return EXIT_USAGE;
	/* Fail on an unknown user before asking for a password. */
	ret = mw_store_user_get(ctl->store, username, &user, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	uid = user.id;
	mw_user_clear(&user);
	ret = ctl_get_password(ctl, o.pw, password, sizeof(password));
	if (ret == EXIT_OK)
		ret = ctl_hash_password(ctl, password, hash, sizeof(hash));
	if (ret != EXIT_OK) {
		mw_memzero(password, sizeof(password));
		return ret;
	}
	/* a reset follows a leak: like the API, end the user's sessions and delete their app
	   passwords, which whoever caused the leak may have made */
	ret = mw_store_user_set_password(ctl->store, username, hash, &err);
	if (ret == MW_STORE_OK)
		ret = mw_store_session_revoke_user(ctl->store, uid, NULL, &sessions, &err);
	if (ret == MW_STORE_OK)
		ret = mw_store_app_password_revoke_all(ctl->store, username, &apppws, &err);
	if (ret != MW_STORE_OK) {
		mw_memzero(password, sizeof(password));
		return ctl_store_exit(ret, &err, username);
	}
	if (o.pw == PW_GENERATE)
		printf("%s\n", password);
	mw_memzero(password, sizeof(password));
	fprintf(stderr, "user %s: password changed (%u sessions ended, %u app passwords deleted)\n",
	        username, sessions, apppws);
	return ctl_audit(ctl, "user.passwd", username, "");
}

/* ctl_user_set_status - enable or disable */
static int ctl_user_set_status(struct mw_ctl *ctl, int argc, char **argv,
			       enum mw_user_status status, const char *action)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1];
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_one_user(argc, argv, first, username, sizeof(username)) != EXIT_OK)
		return EXIT_USAGE;
	ret = mw_store_user_set_status(ctl->store, username, status, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	fprintf(stderr, "user %s: %s\n", username, mw_user_status_name(status));
	return ctl_audit(ctl, action, username, "");
}

/* cmd_user_disable - refuse the user's logins from now on */
static int cmd_user_disable(struct mw_ctl *ctl, int argc, char **argv)
{
	return ctl_user_set_status(ctl, argc, argv, MW_USER_DISABLED, "user.disable");
}

/* cmd_user_enable - allow the user's logins again */
static int cmd_user_enable(struct mw_ctl *ctl, int argc, char **argv)
{
	return ctl_user_set_status(ctl, argc, argv, MW_USER_ACTIVE, "user.enable");
}

/* cmd_user_del - delete a user and everything that belongs to them */
static int cmd_user_del(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1];
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_YES);
	if (ctl_want_args(ctl_current, argc - first, 1, 1) != EXIT_OK)
		return EXIT_USAGE;
	if (!o.yes) {
		ctl_err("user del deletes the user, their patterns and sessions: add --yes");
		return EXIT_USAGE;
	}
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	ret = mw_store_user_delete(ctl->store, username, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	fprintf(stderr, "user %s deleted\n", username);
	return ctl_audit(ctl, "user.del", username, "");
}

/* ctl_user_json - a user as a JSON object (never the password hash or TOTP secret) */
static json_t *ctl_user_json(const struct mw_user *u)
{
	char t1[32], t2[32], t3[32], t4[32];
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:s}", "id",
			 (json_int_t)u->id, "username", u->username, "status",
			 mw_user_status_name(u->status), "role", mw_user_role_name(u->role),
			 "description", u->description != NULL ? u->description : "", "created_at",
			 ctl_time(u->created_at, t1, sizeof(t1)), "updated_at",
			 ctl_time(u->updated_at, t2, sizeof(t2)), "password_changed_at",
			 ctl_time(u->password_changed_at, t3, sizeof(t3)), "totp", u->has_totp,
			 "failed_logins", u->failed_logins, "locked_until",
			 ctl_time(u->locked_until, t4, sizeof(t4)));
}

struct ctl_list_ctx {
	bool json;
	json_t *array;
	unsigned count;
};

/* ctl_list_one - print one user row (or collect it for JSON) */
static int ctl_list_one(const struct mw_user *u, void *context)
{
	struct ctl_list_ctx *ctx = context;
	char t[32];
	ctx->count++;
	if (ctx->json) {
		json_array_append_new(ctx->array, ctl_user_json(u));
		return 0;
	}
	printf("%-40s %-9s %-6s %s\n", u->username, mw_user_status_name(u->status),
	       mw_user_role_name(u->role), ctl_time(u->created_at, t, sizeof(t)));
	return 0;
}

/* cmd_user_list - list users, filtered and paged */
static int cmd_user_list(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	struct mw_user_filter filter = { -1, -1, 0, 0 };
	struct ctl_list_ctx ctx = { false, NULL, 0 };
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON, OPT_ROLE, OPT_STATUS, OPT_LIMIT,
		 OPT_AFTER);
	if (ctl_want_args(ctl_current, argc - first, 0, 0) != EXIT_OK)
		return EXIT_USAGE;
	if (o.role != NULL) {
		enum mw_user_role r;
		if (mw_user_role_parse(o.role, &r) < 0) {
			ctl_err("--role: expected admin or user, not \"%s\"", o.role);
			return EXIT_USAGE;
		}
		filter.role = (int)r;
	}
	if (o.status != NULL) {
		enum mw_user_status s;
		if (mw_user_status_parse(o.status, &s) < 0) {
			ctl_err("--status: expected active, pending or disabled, not \"%s\"", o.status);
			return EXIT_USAGE;
		}
		filter.status = (int)s;
	}
	filter.after_id = o.after;
	filter.limit = o.limit > 1000000 ? 1000000 : (unsigned)o.limit;
	ctx.json = o.json;
	if (o.json)
		ctx.array = json_array();
	else
		printf("%-40s %-9s %-6s %s\n", "USERNAME", "STATUS", "ROLE", "CREATED");
	ret = mw_store_user_list(ctl->store, &filter, ctl_list_one, &ctx, &err);
	if (ret < 0) {
		json_decref(ctx.array);
		return ctl_store_exit(MW_STORE_ERROR, &err, "user list");
	}
	if (o.json)
		ctl_json_print(ctx.array);
	return EXIT_OK;
}

/* cmd_user_show - one user's details and allowed-From patterns */
static int cmd_user_show(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1], t[32];
	struct mw_user u;
	char **patterns = NULL;
	size_t n = 0, i;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	if (ctl_one_user(argc, argv, first, username, sizeof(username)) != EXIT_OK)
		return EXIT_USAGE;
	ret = mw_store_user_get(ctl->store, username, &u, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	ret = mw_store_allowed_from_list(ctl->store, username, &patterns, &n, &err);
	if (ret != MW_STORE_OK) {
		mw_user_clear(&u);
		return ctl_store_exit(ret, &err, username);
	}
	if (o.json) {
		json_t *obj = ctl_user_json(&u), *arr = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(arr, json_string(patterns[i]));
		json_object_set_new(obj, "allowed_from", arr);
		ctl_json_print(obj);
	} else {
		printf("username:            %s\n", u.username);
		printf("status:              %s\n", mw_user_status_name(u.status));
		printf("role:                %s\n", mw_user_role_name(u.role));
		printf("description:         %s\n", u.description != NULL ? u.description : "");
		printf("created:             %s\n", ctl_time(u.created_at, t, sizeof(t)));
		printf("updated:             %s\n", ctl_time(u.updated_at, t, sizeof(t)));
		printf("password changed:    %s\n", ctl_time(u.password_changed_at, t, sizeof(t)));
		printf("two-factor (TOTP):   %s\n", u.has_totp ? "enabled" : "off");
		printf("failed logins:       %d\n", u.failed_logins);
		printf("locked until:        %s\n", ctl_time(u.locked_until, t, sizeof(t)));
		printf("allowed from:        %s\n", n == 0 ? "(none: may not send)" : patterns[0]);
		for (i = 1; i < n; i++)
			printf("                     %s\n", patterns[i]);
	}
	mw_store_strv_free(patterns);
	mw_user_clear(&u);
	return EXIT_OK;
}

/* ---- allow-from ------------------------------------------------------------------------ */

/* ctl_allow_from_change - add or delete each pattern given */
static int ctl_allow_from_change(struct mw_ctl *ctl, int argc, char **argv, bool add)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1], canon[MW_PATTERN_MAX + 1], what[MW_USERNAME_MAX + MW_PATTERN_MAX + 32];
	int first, i, ret, worst = EXIT_OK;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, -1);
	if (ctl_want_args(ctl_current, argc - first, 2, -1) != EXIT_OK)
		return EXIT_USAGE;
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	/* Validate every pattern before changing anything. */
	for (i = first + 1; i < argc; i++)
		if (mw_pattern_normalize(argv[i], canon, sizeof(canon), &err) < 0) {
			ctl_err("invalid pattern \"%s\": %s", argv[i], err.msg);
			return EXIT_USAGE;
		}
	for (i = first + 1; i < argc; i++) {
		(void)mw_pattern_normalize(argv[i], canon, sizeof(canon), NULL);
		ret = add ? mw_store_allowed_from_add(ctl->store, username, canon, &err)
			  : mw_store_allowed_from_del(ctl->store, username, canon, &err);
		(void)snprintf(what, sizeof(what), "%s: pattern %s", username, canon);
		if (ret == MW_STORE_NOTFOUND) {
			struct mw_user u;
			mw_error err2 = { "" };
			int r2 = mw_store_user_get(ctl->store, username, &u, &err2);
			if (r2 == MW_STORE_OK)
				mw_user_clear(&u);
			if (r2 == MW_STORE_NOTFOUND)
				(void)snprintf(what, sizeof(what), "user %s", username);
		}
		ret = ctl_store_exit(ret, &err, what);
		if (ret != EXIT_OK) {
			if (ret == EXIT_ERROR || worst == EXIT_OK)
				worst = ret;
			continue;
		}
		if (ctl_audit(ctl, add ? "allow_from.add" : "allow_from.del", username, canon) !=
		    EXIT_OK)
			return EXIT_ERROR;
		fprintf(stderr, "%s: %s %s\n", username, add ? "added" : "removed", canon);
	}
	return worst;
}

/* cmd_allow_from_add - allow the user to send as addresses matching the patterns */
static int cmd_allow_from_add(struct mw_ctl *ctl, int argc, char **argv)
{
	return ctl_allow_from_change(ctl, argc, argv, true);
}

/* cmd_allow_from_del - remove patterns */
static int cmd_allow_from_del(struct mw_ctl *ctl, int argc, char **argv)
{
	return ctl_allow_from_change(ctl, argc, argv, false);
}

/* cmd_allow_from_list - one pattern per line */
static int cmd_allow_from_list(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = { "" };
	char username[MW_USERNAME_MAX + 1];
	char **patterns = NULL;
	size_t n = 0, i;
	struct mw_user u;
	int first, ret;

	CTL_OPTS(ctl_current, argc, argv, &o, &first, OPT_JSON);
	if (ctl_one_user(argc, argv, first, username, sizeof(username)) != EXIT_OK)
		return EXIT_USAGE;
	ret = mw_store_user_get(ctl->store, username, &u, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	mw_user_clear(&u);
	ret = mw_store_allowed_from_list(ctl->store, username, &patterns, &n, &err);
	if (ret != MW_STORE_OK)
		return ctl_store_exit(ret, &err, username);
	if (o.json) {
		json_t *arr = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(arr, json_string(patterns[i]));
		ctl_json_print(arr);
	} else {
		for (i = 0; i < n; i++)
			printf("%s\n", patterns[i]);
	}
	mw_store_strv_free(patterns);
	return EXIT_OK;
}


static const struct mw_ctl_command users_commands[] = {
	{ "", "init", cmd_init, false, "init",
	  "Create the store (or bring its schema up to date) and the master key file if it\n"
	  "does not exist. Safe to run again." },
	{ "user", "add", cmd_user_add, true,
	  "user add USER [--role admin|user] [--status active|pending|disabled]\n"
	  "       [--description TEXT] [--password-stdin | --generate]",
	  "Create a user (the login, normally an email address; case-folded). Default role\n"
	  "user, status active. The new user may not send mail until allow-from add." },
	{ "user", "list", cmd_user_list, true,
	  "user list [--status S] [--role R] [--limit N] [--after-id ID] [--json]",
	  "List users in id order. --limit and --after-id page through a long list." },
	{ "user", "show", cmd_user_show, true, "user show USER [--json]",
	  "Show a user's details and allowed-From patterns (never the password hash)." },
	{ "user", "passwd", cmd_user_passwd, true, "user passwd USER [--password-stdin | --generate]",
	  "Set a new password. The old one stops working at once for IMAP and SMTP AUTH; the "
	  "user's API sessions end and all their app passwords are deleted." },
	{ "user", "disable", cmd_user_disable, true, "user disable USER",
	  "Refuse the user's logins (IMAP, SMTP AUTH) from now on; keeps their data." },
	{ "user", "enable", cmd_user_enable, true, "user enable USER",
	  "Make a disabled or pending user active." },
	{ "user", "del", cmd_user_del, true, "user del USER --yes",
	  "Delete a user with their patterns, sessions and app passwords (not their mail)." },
	{ "allow-from", "add", cmd_allow_from_add, true, "allow-from add USER PATTERN...",
	  "Allow USER to send as addresses matching PATTERN (envelope sender and header From).\n"
	  "Forms: john@example.com, *@example.com, *@*.example.com, john+*@example.com.\n"
	  "Every pattern is checked before any is added." },
	{ "allow-from", "del", cmd_allow_from_del, true, "allow-from del USER PATTERN...",
	  "Remove patterns." },
	{ "allow-from", "list", cmd_allow_from_list, true, "allow-from list USER [--json]",
	  "List a user's patterns, one per line." },
};

const struct mw_ctl_table ctl_users_table = { users_commands, MW_N_ELEMENTS(users_commands) };
