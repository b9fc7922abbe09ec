/*
 * ctl-users.c - mailwardenctl init (the store only), user and allow-from commands (the store
 * or the API, through ctl->ops): each parses its arguments and prints its result once.
 *
 * Public: the cmd_* handlers of ctl-commands.def.
 */
#include "mw-build.h"
#include "ctl.h"
#include "mw-db.h"
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
int cmd_init(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = {""};
	const char *url = mw_config_str(ctl->cfg, MWK_STORE);
	const char *keypath = mw_config_str(ctl->cfg, MWK_MASTER_KEY);
	struct stat st;
	int first, before = 0, after = 0;
	char shown[512]; /* the URL without its password, for messages and the audit log */

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, -1);
	mw_db_url_redact(url, shown, sizeof(shown));

	if (strncmp(url, "sqlite:", 7) == 0 && ctl_mkdir_parent(url + 7, 0750) < 0)
		return EXIT_ERROR;
	ctl->store = mw_store_open(
	    url, (unsigned)mw_config_int(ctl->cfg, MWK_STORE_BUSY_TIMEOUT) * 1000, &err);
	if (ctl->store == NULL) {
		ctl_err("store %s: %s", shown, err.msg);
		return EXIT_ERROR;
	}
	if (mw_store_schema_version(ctl->store, &before, &err) < 0 ||
	    mw_store_migrate(ctl->store, &err) < 0 ||
	    mw_store_schema_version(ctl->store, &after, &err) < 0) {
		ctl_err("store %s: %s", shown, err.msg);
		return EXIT_ERROR;
	}
	if (before == after)
		printf("store %s: schema version %d, up to date\n", shown, after);
	else
		printf("store %s: schema version %d -> %d\n", shown, before, after);

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
		return ctl_audit(ctl, MW_AUDIT_STORE_INIT, shown, NULL);
	return EXIT_OK;
}

/* ---- user ------------------------------------------------------------------------------ */

/* user_options - --role and --status values (each may be NULL) */
static int user_options(const struct ctl_opts *o, enum mw_user_role *role,
                        enum mw_user_status *status)
{
	if (o->role != NULL && mw_user_role_parse(o->role, role) < 0) {
		ctl_err("--role: expected admin or user, not \"%s\"", o->role);
		return EXIT_USAGE;
	}
	if (o->status != NULL && mw_user_status_parse(o->status, status) < 0) {
		ctl_err("--status: expected active, pending or disabled, not \"%s\"", o->status);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* cmd_user_add - create a user with a password from the chosen source */
int cmd_user_add(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1], password[MW_PASSWORD_MAX + 2];
	char generated[MW_PASSWORD_MAX + 2] = "";
	enum mw_user_role role = MW_ROLE_USER;
	enum mw_user_status status = MW_USER_ACTIVE;
	int ret;

	CTL_ONE_USER(argc, argv, &o, username, OPT_ROLE, OPT_STATUS, OPT_DESCRIPTION,
	             OPT_PASSWORD_STDIN, OPT_GENERATE);
	if (user_options(&o, &role, &status) != EXIT_OK)
		return EXIT_USAGE;
	if (o.description != NULL && strlen(o.description) > MW_DESCRIPTION_MAX) {
		ctl_err("--description: longer than %d bytes", MW_DESCRIPTION_MAX);
		return EXIT_USAGE;
	}
	ret =
	    o.pw == PW_GENERATE ? EXIT_OK : ctl_get_password(ctl, o.pw, password, sizeof(password));
	if (ret == EXIT_OK)
		ret = ctl->ops->user_add(ctl, username, o.pw == PW_GENERATE ? NULL : password, role,
		                         status, o.description != NULL ? o.description : "",
		                         generated, sizeof(generated));
	mw_memzero(password, sizeof(password));
	if (ret == EXIT_OK) {
		if (o.pw == PW_GENERATE)
			printf("%s\n", generated);
		fprintf(stderr, "user %s added (%s, %s)\n", username, mw_user_role_name(role),
		        mw_user_status_name(status));
	}
	mw_memzero(generated, sizeof(generated));
	return ret;
}

/* cmd_user_passwd - set a new password */
int cmd_user_passwd(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1], password[MW_PASSWORD_MAX + 2];
	char generated[MW_PASSWORD_MAX + 2] = "";
	unsigned sessions = 0, apppws = 0;
	int ret;

	CTL_ONE_USER(argc, argv, &o, username, OPT_PASSWORD_STDIN, OPT_GENERATE);
	/* fail on an unknown user before asking for a password */
	ret = ctl->ops->user_exists(ctl, username);
	if (ret == EXIT_OK && o.pw != PW_GENERATE)
		ret = ctl_get_password(ctl, o.pw, password, sizeof(password));
	if (ret == EXIT_OK)
		ret = ctl->ops->user_passwd(ctl, username, o.pw == PW_GENERATE ? NULL : password,
		                            generated, sizeof(generated), &sessions, &apppws);
	mw_memzero(password, sizeof(password));
	if (ret == EXIT_OK) {
		if (o.pw == PW_GENERATE)
			printf("%s\n", generated);
		fprintf(stderr,
		        "user %s: password changed (%u sessions ended, %u app passwords deleted)\n",
		        username, sessions, apppws);
	}
	mw_memzero(generated, sizeof(generated));
	return ret;
}

/* cmd_user_status - user enable|disable USER: the command's name is the new status */
int cmd_user_status(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1];
	enum mw_user_status status =
	    strcmp(ctl_current->name, "disable") == 0 ? MW_USER_DISABLED : MW_USER_ACTIVE;
	int ret;

	CTL_ONE_USER(argc, argv, &o, username, -1);
	ret = ctl->ops->user_set_status(ctl, username, status);
	if (ret == EXIT_OK)
		fprintf(stderr, "user %s: %s\n", username, mw_user_status_name(status));
	return ret;
}

/* cmd_user_del - delete a user and everything that belongs to them */
int cmd_user_del(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1];
	int first, ret;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 1, 1, OPT_YES);
	if (!o.yes) {
		ctl_err("user del deletes the user, their patterns and sessions: add --yes");
		return EXIT_USAGE;
	}
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	ret = ctl->ops->user_delete(ctl, username);
	if (ret == EXIT_OK)
		fprintf(stderr, "user %s deleted\n", username);
	return ret;
}

/* user_json - a user as a JSON object (never the password hash or TOTP secret); "id" and
   "totp" only where the implementation reports them */
static json_t *user_json(const struct ctl_user *u)
{
	char t1[32], t2[32], t3[32], t4[32];
	json_t *o = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "username", u->username, "status",
	    mw_user_status_name(u->status), "role", mw_user_role_name(u->role), "description",
	    u->description, "created_at", ctl_time(u->created_at, t1, sizeof(t1)), "updated_at",
	    ctl_time(u->updated_at, t2, sizeof(t2)), "password_changed_at",
	    ctl_time(u->password_changed_at, t3, sizeof(t3)), "failed_logins", u->failed_logins,
	    "locked_until", ctl_time(u->locked_until, t4, sizeof(t4)));
	if (u->id >= 0)
		json_object_set_new(o, "id", json_integer(u->id));
	if (u->totp >= 0)
		json_object_set_new(o, "totp", json_boolean(u->totp > 0));
	return o;
}

/* patterns_json - a user's allowed-From patterns as a JSON array of strings */
static json_t *patterns_json(char **patterns, size_t n)
{
	json_t *arr = json_array();
	size_t i;
	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_string(patterns[i]));
	return arr;
}

struct list_ctx {
	json_t *array; /* --json, else NULL */
};

/* list_one - print one user row (or collect it for JSON) */
static int list_one(const struct ctl_user *u, void *arg)
{
	struct list_ctx *ctx = arg;
	char t[32];
	if (ctx->array != NULL) {
		json_array_append_new(ctx->array, user_json(u));
		return 0;
	}
	printf("%-40s %-9s %-6s %s\n", u->username, mw_user_status_name(u->status),
	       mw_user_role_name(u->role), ctl_time(u->created_at, t, sizeof(t)));
	return 0;
}

/* cmd_user_list - list users, filtered and paged */
int cmd_user_list(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	struct list_ctx ctx = {NULL};
	enum mw_user_role role = MW_ROLE_USER;
	enum mw_user_status status = MW_USER_ACTIVE;
	int first, ret;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 0, 0, OPT_JSON, OPT_ROLE, OPT_STATUS,
	         OPT_LIMIT, OPT_AFTER);
	if (user_options(&o, &role, &status) != EXIT_OK)
		return EXIT_USAGE;
	if (o.json)
		ctx.array = json_array();
	else
		printf("%-40s %-9s %-6s %s\n", "USERNAME", "STATUS", "ROLE", "CREATED");
	ret = ctl->ops->user_list(ctl, o.role != NULL ? (int)role : -1,
	                          o.status != NULL ? (int)status : -1, o.after,
	                          o.limit > 1000000 ? 1000000 : o.limit, list_one, &ctx);
	if (ret != EXIT_OK) {
		json_decref(ctx.array);
		return ret;
	}
	if (ctx.array != NULL)
		ctl_json_print(ctx.array);
	return EXIT_OK;
}

/* cmd_user_show - one user's details and allowed-From patterns */
int cmd_user_show(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1], t[32];
	struct ctl_user u;
	char **patterns = NULL;
	size_t n = 0, i;
	int ret;

	CTL_ONE_USER(argc, argv, &o, username, OPT_JSON);
	ret = ctl->ops->user_get(ctl, username, &u, &patterns, &n);
	if (ret != EXIT_OK)
		return ret;
	if (o.json) {
		json_t *obj = user_json(&u);
		json_object_set_new(obj, "allowed_from", patterns_json(patterns, n));
		ctl_json_print(obj);
	} else {
		printf("username:            %s\n", u.username);
		printf("status:              %s\n", mw_user_status_name(u.status));
		printf("role:                %s\n", mw_user_role_name(u.role));
		printf("description:         %s\n", u.description);
		printf("created:             %s\n", ctl_time(u.created_at, t, sizeof(t)));
		printf("updated:             %s\n", ctl_time(u.updated_at, t, sizeof(t)));
		printf("password changed:    %s\n", ctl_time(u.password_changed_at, t, sizeof(t)));
		printf("two-factor (TOTP):   %s\n", u.totp < 0   ? "(not reported by the API)"
		                                    : u.totp > 0 ? "enabled"
		                                                 : "off");
		printf("failed logins:       %d\n", u.failed_logins);
		printf("locked until:        %s\n", ctl_time(u.locked_until, t, sizeof(t)));
		printf("allowed from:        %s\n", n == 0 ? "(none: may not send)" : patterns[0]);
		for (i = 1; i < n; i++)
			printf("                     %s\n", patterns[i]);
	}
	mw_store_strv_free(patterns);
	return EXIT_OK;
}

/* ---- allow-from ------------------------------------------------------------------------ */

/* cmd_allow_from_change - allow-from add|del USER PATTERN...: add or delete each pattern
   given (all checked before the first) */
int cmd_allow_from_change(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	mw_error err = {""};
	char username[MW_USERNAME_MAX + 1], canon[MW_PATTERN_MAX + 1];
	bool add = strcmp(ctl_current->name, "add") == 0;
	int first, i, ret, worst = EXIT_OK;

	CTL_ARGS(ctl_current, argc, argv, &o, &first, 2, -1, -1);
	if (ctl_username(argv[first], username, sizeof(username)) < 0)
		return EXIT_USAGE;
	for (i = first + 1; i < argc; i++)
		if (mw_pattern_normalize(argv[i], canon, sizeof(canon), &err) < 0) {
			ctl_err("invalid pattern \"%s\": %s", argv[i], err.msg);
			return EXIT_USAGE;
		}
	for (i = first + 1; i < argc; i++) {
		(void)mw_pattern_normalize(argv[i], canon, sizeof(canon), NULL);
		ret = ctl->ops->allowed_from_change(ctl, username, canon, add);
		if (ret != EXIT_OK) {
			if (ret == EXIT_ERROR || worst == EXIT_OK)
				worst = ret;
			continue;
		}
		fprintf(stderr, "%s: %s %s\n", username, add ? "added" : "removed", canon);
	}
	return worst;
}

/* cmd_allow_from_list - one pattern per line */
int cmd_allow_from_list(struct mw_ctl *ctl, int argc, char **argv)
{
	struct ctl_opts o;
	char username[MW_USERNAME_MAX + 1];
	char **patterns = NULL;
	size_t n = 0, i;
	int ret;

	CTL_ONE_USER(argc, argv, &o, username, OPT_JSON);
	ret = ctl->ops->allowed_from_list(ctl, username, &patterns, &n);
	if (ret != EXIT_OK)
		return ret;
	if (o.json) {
		ctl_json_print(patterns_json(patterns, n));
	} else {
		for (i = 0; i < n; i++)
			printf("%s\n", patterns[i]);
	}
	mw_store_strv_free(patterns);
	return EXIT_OK;
}
