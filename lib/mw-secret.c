/* lib/mw-secret.c - placeholder until implemented */
typedef int mw_placeholder_mw_secret;
